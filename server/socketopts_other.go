//go:build !unix

package server

import "errors"

func (o SocketOptions) set(uintptr) error {
	return errors.New("--socket-reuse-port and --socket-reuse-address need a unix system")
}
