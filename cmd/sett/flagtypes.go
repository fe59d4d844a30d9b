package main

import (
	"errors"
	"strconv"
	"strings"
)

// uint32Flag is an unsigned 32-bit flag (etcd's --max-concurrent-streams).
type uint32Flag struct{ v *uint32 }

func (f uint32Flag) String() string {
	if f.v == nil {
		return "0"
	}
	return strconv.FormatUint(uint64(*f.v), 10)
}

func (f uint32Flag) Set(s string) error {
	n, err := strconv.ParseUint(s, 0, 32)
	if err != nil {
		return errParseUint
	}
	*f.v = uint32(n)
	return nil
}

var errParseUint = errors.New("parse error")

// nameList is a comma-separated list that may be empty (etcd's
// --host-whitelist and --cors).
type nameList struct{ v *[]string }

func (l nameList) String() string {
	if l.v == nil {
		return ""
	}
	return strings.Join(*l.v, ",")
}

func (l nameList) Set(s string) error {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	*l.v = out
	return nil
}
