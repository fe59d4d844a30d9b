package server

import (
	"context"
	"net"
	"syscall"
)

// SocketOptions are etcd's --socket-reuse-port and --socket-reuse-address,
// set on every client and peer TCP listener.
type SocketOptions struct {
	ReusePort    bool // SO_REUSEPORT: other sockets may bind the same port
	ReuseAddress bool // SO_REUSEADDR: bind while old connections linger in TIME_WAIT
}

// listen opens a listener with the options set before bind.
func (o SocketOptions) listen(network, addr string) (net.Listener, error) {
	if !o.ReusePort && !o.ReuseAddress {
		return net.Listen(network, addr)
	}
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) { serr = o.set(fd) })
		if err != nil {
			return err
		}
		return serr
	}}
	return lc.Listen(context.Background(), network, addr)
}
