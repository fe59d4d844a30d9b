# A Kind node image assembled offline (mk/kind.mk, `make kind-node-image`):
# the build context holds kind's base files (kind-base/, from the kind module),
# kubeadm/kubelet/kubectl (k8s/), containerd (containerd/), CNI plugins (cni/)
# and images.tar, the FROM-scratch images kubeadm's static pods and addons run.
#
# Networking is static: one node, pods on the cni0 bridge in 10.244.0.0/24
# (the first /24 of kind's default pod subnet), no kube-proxy. Clusters from
# this image set networking.disableDefaultCNI and kubeProxyMode: none.
ARG ROOTFS
FROM ${ROOTFS}
ARG K8S_VERSION
ARG PAUSE_IMAGE

COPY kind-base/usr/local/bin/ /usr/local/bin/
COPY kind-base/kind/ /kind/
COPY kind-base/etc/ /etc/
COPY kind-base/LICENSES/ /LICENSES/
COPY k8s/ /usr/bin/
COPY containerd/ /usr/local/bin/
COPY cni/ /opt/cni/bin/
COPY 10-sett-pods.conflist /etc/cni/net.d/
COPY sett-preload-images.service /etc/systemd/system/
COPY 20-sett-images.conf /etc/systemd/system/kubelet.service.d/
COPY sett-node-init /usr/local/bin/
COPY images.tar /kind/images/images.tar

# As kind's base image: only the units a node needs start, journald leaves
# /dev/kmsg alone; the runtime spec every container starts from runs kind's
# product-files hook and sets no rlimits.
RUN set -eux; \
    chmod 0755 /usr/local/bin/* /kind/bin/* /usr/bin/kubeadm /usr/bin/kubelet /usr/bin/kubectl /opt/cni/bin/*; \
    find /lib/systemd/system/sysinit.target.wants/ -name systemd-tmpfiles-setup.service -delete; \
    rm -f /lib/systemd/system/multi-user.target.wants/* /etc/systemd/system/*.wants/* \
          /lib/systemd/system/local-fs.target.wants/* /lib/systemd/system/sockets.target.wants/*udev* \
          /lib/systemd/system/sockets.target.wants/*initctl* /lib/systemd/system/basic.target.wants/*; \
    echo "ReadKMsg=no" >> /etc/systemd/journald.conf; \
    ln -sf /usr/lib/systemd/systemd /sbin/init; \
    systemctl enable kubelet.service containerd.service undo-mount-hacks.service sett-preload-images.service; \
    systemctl mask systemd-binfmt.service; \
    sed -i "s|^\(\s*sandbox_image\s*=\).*|\1 \"${PAUSE_IMAGE}\"|" /etc/containerd/config.toml; \
    grep -q "sandbox_image = \"${PAUSE_IMAGE}\"" /etc/containerd/config.toml; \
    ctr oci spec | jq 'del(.process.rlimits) | .hooks.createContainer += [{"path": "/kind/bin/mount-product-files.sh"}]' \
      > /etc/containerd/cri-base.json; \
    mkdir -p /etc/kubernetes/manifests; \
    echo "${K8S_VERSION}" > /kind/version; \
    kubeadm version -o short | grep -qx "${K8S_VERSION}"

ENV container=docker
STOPSIGNAL SIGRTMIN+3
ENTRYPOINT ["/usr/local/bin/sett-node-init", "/usr/local/bin/entrypoint", "/sbin/init"]
