package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"strings"
	"time"
)

// withPeerSANCheck makes cfg refuse a peer whose client certificate names
// hosts (IP or DNS SANs) none of which is the address it connects from,
// as etcd's peer listener does unless --peer-skip-client-san-verification.
// A certificate without SANs passes; DNS names match through a reverse
// lookup of the address or a forward lookup of the name.
func withPeerSANCheck(cfg *tls.Config) *tls.Config {
	base := cfg.Clone()
	out := cfg.Clone()
	out.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
		c := base.Clone()
		remote := hello.Conn.RemoteAddr().String()
		prev := c.VerifyConnection
		c.VerifyConnection = func(cs tls.ConnectionState) error {
			if prev != nil {
				if err := prev(cs); err != nil {
					return err
				}
			}
			if len(cs.PeerCertificates) == 0 {
				return nil
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			return certSANMatches(ctx, cs.PeerCertificates[0], remote)
		}
		return c, nil
	}
	return out
}

func certSANMatches(ctx context.Context, cert *x509.Certificate, remote string) error {
	if len(cert.IPAddresses) == 0 && len(cert.DNSNames) == 0 {
		return nil
	}
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		return err
	}
	if len(cert.IPAddresses) > 0 {
		err := cert.VerifyHostname(host)
		if err == nil {
			return nil
		}
		if len(cert.DNSNames) == 0 {
			return err
		}
	}
	if ok, err := hostInDNSNames(ctx, host, cert.DNSNames); !ok {
		suffix := ""
		if err != nil {
			suffix = " (" + err.Error() + ")"
		}
		return fmt.Errorf("tls: %q does not match any of DNSNames %q%s", host, cert.DNSNames, suffix)
	}
	return nil
}

// hostInDNSNames reports whether the address host resolves back to one of
// names (wildcards "*.x" match by suffix), or one of names resolves to it.
func hostInDNSNames(ctx context.Context, host string, names []string) (bool, error) {
	var exact, suffixes []string
	for _, n := range names {
		if strings.HasPrefix(n, "*.") {
			suffixes = append(suffixes, n[1:])
		} else {
			exact = append(exact, n)
		}
	}
	rev, lastErr := net.DefaultResolver.LookupAddr(ctx, host)
	for _, r := range rev {
		r = strings.TrimSuffix(r, ".")
		for _, s := range suffixes {
			if strings.HasSuffix(r, s) {
				return true, nil
			}
		}
		for _, n := range exact {
			if n == r {
				return true, nil
			}
		}
	}
	for _, n := range exact {
		addrs, err := net.DefaultResolver.LookupHost(ctx, n)
		if err != nil {
			lastErr = err
			continue
		}
		for _, a := range addrs {
			if a == host {
				return true, nil
			}
		}
	}
	return false, lastErr
}
