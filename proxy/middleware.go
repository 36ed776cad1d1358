package proxy

import (
	"net/http"
	"runtime/debug"
)

// middleware wraps a handler with one cross-cutting concern.
type middleware func(http.Handler) http.Handler

// chain applies middlewares so that the first one listed runs first.
func chain(h http.Handler, mws ...middleware) http.Handler {
	for i := len(mws) - 1; i >= 0; i-- {
		h = mws[i](h)
	}
	return h
}

// withRequestID gives every request a fresh id, replacing any the client
// sent: it is set on the response (errors included) and, through the
// inbound header, sent upstream. The access handler reads it back from the
// request header rather than from a context value.
func (p *Proxy) withRequestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := []string{p.ids.next()}
		r.Header[headerRequestID] = id
		w.Header()[headerRequestID] = id
		next.ServeHTTP(w, r)
	})
}

// withRecover turns a panic into a logged 500 carrying the request id, so
// that one bad request never takes the process down.
// http.ErrAbortHandler is re-raised: ReverseProxy uses it to abort a
// response whose body copy failed, and net/http handles it quietly.
func (p *Proxy) withRecover(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			v := recover()
			if v == nil {
				return
			}
			if v == http.ErrAbortHandler {
				panic(v)
			}
			id := r.Header.Get(headerRequestID)
			p.logger.Error("panic serving request", "request_id", id, "panic", v, "stack", string(debug.Stack()))
			p.respond.error(w, r, id, http.StatusInternalServerError, "internal_error", "Something went wrong on our side.")
		}()
		next.ServeHTTP(w, r)
	})
}
