package server

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"

	"github.com/iphttps/iphttps/internal/winerr"
)

// handshakeCode is the Windows code for a failed server-side TLS handshake,
// as a Windows server would log it: the client's certificate missing,
// untrusted, expired or revoked; a timeout; the peer gone; anything else
// is a bad message.
func handshakeCode(err error) uint32 {
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded):
		return winerr.TimedOut
	case strings.Contains(err.Error(), "didn't provide a certificate"):
		return winerr.IncompleteCredentials
	}
	code := winerr.Classify(err)
	if code == winerr.NoData { // Classify's catch-all for a client
		return winerr.IllegalMessage
	}
	return code
}

// codeCounts counts events by Windows code.
type codeCounts struct {
	mu sync.Mutex
	m  map[uint32]uint64
}

func (c *codeCounts) add(code uint32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[uint32]uint64{}
	}
	c.m[code]++
}

// each calls fn for every code counted, in order of the codes.
func (c *codeCounts) each(fn func(code uint32, n uint64)) {
	type pair struct {
		code uint32
		n    uint64
	}
	c.mu.Lock()
	pairs := make([]pair, 0, len(c.m))
	for k, v := range c.m {
		pairs = append(pairs, pair{k, v})
	}
	c.mu.Unlock()
	slices.SortFunc(pairs, func(a, b pair) int { return cmp.Compare(a.code, b.code) })
	for _, p := range pairs {
		fn(p.code, p.n)
	}
}

// handshakeFailureKey is the counter name of failures with code.
func handshakeFailureKey(code uint32) string {
	return fmt.Sprintf("handshake_failures_%#x", code)
}
