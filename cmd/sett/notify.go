package main

import (
	"errors"
	"net"
)

// errNoNotifySocket means NOTIFY_SOCKET is unset: not run by systemd with
// Type=notify, so there is nobody to tell.
var errNoNotifySocket = errors.New("NOTIFY_SOCKET is not set")

// sdNotify sends state (e.g. "READY=1") to systemd's notification socket,
// a unix datagram socket named by NOTIFY_SOCKET ('@' prefix: abstract
// namespace), as sd_notify(3) and etcd do.
func sdNotify(getenv func(string) string, state string) error {
	path := getenv("NOTIFY_SOCKET")
	if path == "" {
		return errNoNotifySocket
	}
	addr := &net.UnixAddr{Name: path, Net: "unixgram"}
	if path[0] == '@' {
		addr.Name = "\x00" + path[1:]
	}
	c, err := net.DialUnix("unixgram", nil, addr)
	if err != nil {
		return err
	}
	defer c.Close()
	_, err = c.Write([]byte(state))
	return err
}
