package proxy

import (
	"crypto/rand"
	"encoding/hex"
	"strconv"
	"sync/atomic"
)

// headerRequestID carries the request id to the client (in every response,
// errors included) and to the upstream.
const headerRequestID = "X-Request-Id"

// requestIDs makes request ids: a random per-process prefix and a counter,
// unique across replicas and restarts without a random read per request.
type requestIDs struct {
	prefix string
	n      atomic.Uint64
}

func newRequestIDs() *requestIDs {
	var b [6]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+).
	return &requestIDs{prefix: hex.EncodeToString(b[:]) + "-"}
}

// next returns a new id such as "9f2c4e1a0b7d-1k3".
func (g *requestIDs) next() string {
	var buf [32]byte
	b := append(buf[:0], g.prefix...)
	b = strconv.AppendUint(b, g.n.Add(1), 36)
	return string(b)
}
