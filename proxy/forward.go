package proxy

import (
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"time"
)

// The identity headers riskgate sends upstream (DESIGN.md "Headers sent
// upstream"). Clients can send them too: they are stripped from every
// request before anything else.
const (
	headerUser     = "X-Forwarded-User"
	headerEmail    = "X-Forwarded-Email"
	headerGroups   = "X-Forwarded-Groups"
	headerDevice   = "X-Riskgate-Device-Id"
	headerRisk     = "X-Riskgate-Risk"
	headerDecision = "X-Riskgate-Decision"
)

// identityHeaders are stripped from client requests and set by riskgate.
var identityHeaders = [...]string{headerUser, headerEmail, headerGroups, headerDevice, headerRisk, headerDecision}

// forwardedHeaders are what Rewrite copies from the inbound request (where
// the access handler put them) to the outbound one: setting them after the
// outbound request's hop-by-hop headers were removed means a client cannot
// make ReverseProxy drop them by naming them in its Connection header.
var forwardedHeaders = [...]string{headerUser, headerEmail, headerGroups, headerDevice, headerRisk, headerDecision, headerRequestID}

// TransportOptions tune the upstream transport shared by every route.
type TransportOptions struct {
	// UpstreamTimeout bounds the wait for an upstream's response headers.
	// Default 30s.
	UpstreamTimeout time.Duration
	// DialTimeout bounds connecting to an upstream. Default 5s.
	DialTimeout time.Duration
	// MaxIdleConnsPerHost keeps this many idle keep-alive connections per
	// upstream. Default 256 (net/http's default of 2 throttles a proxy).
	MaxIdleConnsPerHost int
}

// NewTransport returns the tuned transport the reverse proxies share.
// Environment proxy settings are ignored: upstreams are reached directly.
func NewTransport(opts TransportOptions) *http.Transport {
	if opts.UpstreamTimeout <= 0 {
		opts.UpstreamTimeout = 30 * time.Second
	}
	if opts.DialTimeout <= 0 {
		opts.DialTimeout = 5 * time.Second
	}
	if opts.MaxIdleConnsPerHost <= 0 {
		opts.MaxIdleConnsPerHost = 256
	}
	d := &net.Dialer{Timeout: opts.DialTimeout, KeepAlive: 30 * time.Second}
	return &http.Transport{
		DialContext:           d.DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          4 * opts.MaxIdleConnsPerHost,
		MaxIdleConnsPerHost:   opts.MaxIdleConnsPerHost,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
		ResponseHeaderTimeout: opts.UpstreamTimeout,
	}
}

// bufferPool recycles ReverseProxy's 32 KiB copy buffers.
type bufferPool struct{ p sync.Pool }

func newBufferPool() *bufferPool {
	return &bufferPool{p: sync.Pool{New: func() any { b := make([]byte, 32*1024); return &b }}}
}

func (bp *bufferPool) Get() []byte  { return *(bp.p.Get().(*[]byte)) }
func (bp *bufferPool) Put(b []byte) { bp.p.Put(&b) }

// newReverseProxy builds the reverse proxy of one route.
func newReverseProxy(upstream *url.URL, transport http.RoundTripper, buffers httputil.BufferPool,
	cookieName string, onError func(http.ResponseWriter, *http.Request, error)) *httputil.ReverseProxy {
	return &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(upstream)
			pr.SetXForwarded()
			for _, h := range forwardedHeaders {
				if v, ok := pr.In.Header[h]; ok {
					pr.Out.Header[h] = v
				}
			}
			removeCookie(pr.Out.Header, cookieName)
		},
		Transport:  transport,
		BufferPool: buffers,
		ModifyResponse: func(resp *http.Response) error {
			// The client gets riskgate's request id, not the upstream's.
			resp.Header.Del(headerRequestID)
			return nil
		},
		ErrorHandler: onError,
	}
}

// underscoreStripped are the headers whose underscore spellings are
// stripped: riskgate's identity headers and the ones ReverseProxy and the
// request id middleware set upstream. CGI, WSGI and PHP read
// "X_Forwarded_For" as the same variable as "X-Forwarded-For".
var underscoreStripped = [...]string{
	headerUser, headerEmail, headerGroups, headerDevice, headerRisk, headerDecision,
	"X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto", headerRequestID,
}

// stripIdentityHeaders deletes every client-sent identity header, including
// spellings with underscores that some upstream frameworks (CGI, WSGI, PHP)
// read as the same header (for the forwarding headers too).
func stripIdentityHeaders(h http.Header) {
	for _, k := range identityHeaders {
		delete(h, k)
	}
	for k := range h {
		if strings.IndexByte(k, '_') < 0 {
			continue
		}
		n := strings.ReplaceAll(k, "_", "-")
		for _, id := range underscoreStripped {
			if strings.EqualFold(n, id) {
				delete(h, k)
				break
			}
		}
	}
}

// stripUpgrade removes a request's protocol upgrade unless it is to
// WebSocket alone. ReverseProxy forwards any upgrade and, on a 101, splices
// the connections: after "Upgrade: h2c" every HTTP/2 request the client
// sends reaches the upstream without a route match, a decision or
// riskgate's identity headers (h2c smuggling). Without the Upgrade header
// the request is forwarded as a plain one, which RFC 9110 section 7.8
// allows a server to do.
func stripUpgrade(h http.Header) {
	up, ok := h["Upgrade"]
	if !ok {
		return
	}
	if len(up) == 1 && strings.EqualFold(strings.TrimSpace(up[0]), "websocket") {
		return
	}
	delete(h, "Upgrade")
	delete(h, "Http2-Settings")
}

// removeCookie removes the cookie called name from the Cookie header(s):
// riskgate's session must not reach the upstream.
func removeCookie(h http.Header, name string) {
	values := h["Cookie"]
	if name == "" || len(values) == 0 {
		return
	}
	found := false
	for _, v := range values {
		if strings.Contains(v, name) {
			found = true
			break
		}
	}
	if !found {
		return
	}
	var kept []string
	for _, v := range values {
		for part := range strings.SplitSeq(v, ";") {
			c := strings.TrimSpace(part)
			if c == "" {
				continue
			}
			n, _, _ := strings.Cut(c, "=")
			if strings.TrimSpace(n) == name {
				continue
			}
			kept = append(kept, c)
		}
	}
	if len(kept) == 0 {
		delete(h, "Cookie")
		return
	}
	h["Cookie"] = []string{strings.Join(kept, "; ")}
}
