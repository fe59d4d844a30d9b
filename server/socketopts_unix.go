//go:build unix

package server

import "golang.org/x/sys/unix"

func (o SocketOptions) set(fd uintptr) error {
	if o.ReusePort {
		if err := unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1); err != nil {
			return err
		}
	}
	if o.ReuseAddress {
		if err := unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
			return err
		}
	}
	return nil
}
