package proxy

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/riskgate/riskgate/policy"
	"github.com/riskgate/riskgate/riskcache"
)

// RiskLookup is the part of the risk cache the proxy uses.
type RiskLookup interface {
	LookupAt(id string, now time.Time) riskcache.Risk
}

// Reserved paths on the proxy listener (DESIGN.md "Reserved paths"). They
// are never forwarded.
const (
	reservedPrefix  = "/.riskgate/"
	pathLogin       = "/.riskgate/login"
	pathCallback    = "/.riskgate/callback"
	pathLogout      = "/.riskgate/logout"
	webhookPrefix   = "/.riskgate/webhook/"
	loginRedirectTo = pathLogin + "?rd="
)

// Options configure a Proxy. Everything derived from the configuration file
// lives in a Snapshot instead, so that a reload can swap it.
type Options struct {
	// Logger receives one "decision" line per decided request and errors.
	// Default: discard.
	Logger *slog.Logger
	// Now is the clock decisions are made with (grace periods). Default
	// time.Now.
	Now func() time.Time
	// Risk looks devices up. Required.
	Risk RiskLookup
	// Reserved serves /.riskgate/login, /.riskgate/callback and
	// /.riskgate/logout. Nil: those paths are 404 and unauthenticated
	// browsers get 401 rather than a redirect to the login.
	Reserved http.Handler
	// Webhook serves /.riskgate/webhook/{vendor}. Nil: 404.
	Webhook http.Handler
	// Snapshot, if set, is stored before New returns. Until a snapshot is
	// stored every request gets 503.
	Snapshot *Snapshot
	// RecheckInterval is how often an upgraded (WebSocket) connection is
	// decided again while it is open. Default 15s.
	RecheckInterval time.Duration
}

// Proxy is riskgate's access handler: it decides each request and forwards
// it upstream or blocks it. Its configuration is an immutable Snapshot,
// swapped atomically by Store.
type Proxy struct {
	logger   *slog.Logger
	now      func() time.Time
	risk     RiskLookup
	reserved http.Handler
	webhook  http.Handler
	ids      *requestIDs
	respond  *responder // for responses when no snapshot is stored
	snapshot atomic.Pointer[Snapshot]
	handler  http.Handler
	recheck  time.Duration
}

// New returns a Proxy. It starts no goroutines.
func New(opts Options) *Proxy {
	p := &Proxy{
		logger:   cmp.Or(opts.Logger, slog.New(slog.DiscardHandler)),
		now:      opts.Now,
		risk:     opts.Risk,
		reserved: opts.Reserved,
		webhook:  opts.Webhook,
		ids:      newRequestIDs(),
	}
	if p.now == nil {
		p.now = time.Now
	}
	p.recheck = cmp.Or(opts.RecheckInterval, 15*time.Second)
	plain := NewPlainPages()
	p.respond = &responder{pages: plain, plain: plain, logger: p.logger}
	if opts.Snapshot != nil {
		p.Store(opts.Snapshot)
	}
	p.handler = chain(http.HandlerFunc(p.access), p.withRequestID, p.withRecover)
	return p
}

// Store makes s the configuration every request from now on is served
// with. Requests in flight finish with the snapshot they started with.
func (p *Proxy) Store(s *Snapshot) { p.snapshot.Store(s) }

// Snapshot returns the configuration currently served, or nil.
func (p *Proxy) Snapshot() *Snapshot { return p.snapshot.Load() }

// ServeHTTP implements http.Handler.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) { p.handler.ServeHTTP(w, r) }

// access is the request path (DESIGN.md "The request path"): strip,
// reserved paths, route, authenticate, identify the device, look up its
// risk, evaluate, record, then forward or block.
func (p *Proxy) access(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	reqID := r.Header.Get(headerRequestID)
	s := p.snapshot.Load()
	if s == nil {
		p.respond.error(w, r, reqID, http.StatusServiceUnavailable, "not_configured", "The gateway is starting. Try again in a moment.")
		return
	}

	// 1. Strip every identity header a client could spoof, before anything
	// else reads the request, and every protocol upgrade but WebSocket: an
	// upgraded connection is a tunnel to the upstream in which later
	// requests ("Upgrade: h2c") are never decided.
	stripIdentityHeaders(r.Header)
	stripUpgrade(r.Header)
	if r.Method == http.MethodConnect {
		// A tunnel, never forwarded (RFC 9110 section 9.3.6).
		w.Header().Set("Allow", "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS")
		s.respond.error(w, r, reqID, http.StatusMethodNotAllowed, "method_not_allowed", "CONNECT is not supported.")
		return
	}

	// 2. Reserved paths are riskgate's own, never forwarded.
	if strings.HasPrefix(r.URL.Path, reservedPrefix) || r.URL.Path == "/.riskgate" {
		p.serveReserved(w, r, s, reqID)
		return
	}

	// 3. Route, on a path every upstream reads the same way (see
	// unambiguousPath): otherwise it could match one route here and reach
	// another route's resource upstream, slipping past that one's policy.
	if !unambiguousPath(s.set, r.Host, r.URL.Path) {
		s.respond.error(w, r, reqID, http.StatusBadRequest, "bad_path",
			"The address contains dot segments, repeated slashes, backslashes, or path parameters or trailing dots that change its meaning.")
		s.noRoute.Observe(time.Since(start).Seconds())
		return
	}
	cr, ok := s.set.Route(r.Host, r.URL.Path)
	if !ok {
		s.respond.error(w, r, reqID, http.StatusNotFound, "not_found", "No application is configured at this address.")
		s.noRoute.Observe(time.Since(start).Seconds())
		return
	}
	rt := s.routes[cr.Index]
	defer func() { rt.duration.Observe(time.Since(start).Seconds()) }()

	// 4. Authenticate. Authorization takes one credential (RFC 9110
	// section 11.6.2): with two, riskgate could verify one while the
	// upstream honours the other.
	if len(r.Header["Authorization"]) > 1 {
		s.respond.error(w, r, reqID, http.StatusBadRequest, "bad_request", "The request has more than one Authorization header.")
		return
	}
	id, err := s.authenticate(r)
	if err != nil {
		p.unauthenticated(w, r, s, rt, reqID, err)
		return
	}

	// 5. Identify the device.
	dev := s.devices.identify(r, id)

	// 6-7. Look up its risk and evaluate the policies.
	facts, d := p.decide(s, cr, id, dev)

	// 8. Record: metrics and one audit line.
	decision := rt.record(&d, s.policies)
	p.logDecision(r, reqID, cr, id, dev, facts.Risk, decision, &d)

	// 9. Forward or block.
	if !d.Allow {
		info := &BlockInfo{
			Reason:           d.Reason,
			Policy:           d.Policy,
			Route:            cr.Name,
			RouteDisplayName: cr.DisplayName,
			Risk:             facts.Risk.String(),
			DeviceID:         dev.ID,
			User:             id.User,
			Vendor:           facts.Vendor,
			Platform:         facts.Platform,
			OSVersion:        facts.OSVersion,
		}
		if cp, ok := s.set.Policy(d.Policy); ok {
			info.MaxRisk = cp.MaxRisk().String()
			info.MinOS = cp.MinOS(facts.Platform)
		}
		if r.Method == http.MethodGet {
			info.RetryURL = r.URL.RequestURI()
		}
		if id.Via == "session" {
			info.SignOutURL = pathLogout + "?rd=" + url.QueryEscape(r.URL.RequestURI())
		}
		s.respond.block(w, r, reqID, info)
		return
	}
	setIdentityHeaders(r.Header, id, dev.ID, facts.Risk, decision)
	if _, upgrade := r.Header["Upgrade"]; upgrade && !id.Expiry.IsZero() {
		// An upgraded connection (WebSocket) is decided once, here: it
		// must not outlive the credential that was decided. ReverseProxy
		// closes both ends when the request's context ends.
		ctx, cancel := context.WithTimeout(r.Context(), id.Expiry.Sub(p.now()))
		defer cancel()
		r = r.WithContext(ctx)
		// Nor outlive its device's risk: re-decide it while it is open.
		go p.recheckUpgraded(ctx, cancel, r.Host, r.URL.Path, reqID, id, dev)
	}
	if r.Body != nil && r.Body != http.NoBody && s.bodyIdle > 0 {
		r.Body = &idleBody{rc: r.Body, ctl: http.NewResponseController(w), idle: s.bodyIdle}
	}
	rt.proxy.ServeHTTP(w, r)
}

// recheckUpgraded re-decides an upgraded (WebSocket) connection every
// recheck interval with the configuration and risk in force, and ends it
// (cancel closes both ends) when it would now be blocked: a device that
// turns risky loses its open connections too, not only its next requests.
// It returns when ctx ends.
func (p *Proxy) recheckUpgraded(ctx context.Context, cancel context.CancelFunc, host, path, reqID string, id *Identity, dev Device) {
	t := time.NewTicker(p.recheck)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		s := p.snapshot.Load()
		cr, ok := s.set.Route(host, path)
		reason := policy.ReasonNoPolicy
		if ok {
			_, d := p.decide(s, cr, id, dev)
			if d.Allow {
				continue
			}
			reason = d.Reason
		}
		p.logger.LogAttrs(ctx, slog.LevelInfo, "upgraded connection closed: now blocked",
			slog.String("request_id", reqID), slog.String("user", id.User),
			slog.String("device_id", dev.ID), slog.String("reason", string(reason)))
		cancel()
		return
	}
}

// decide looks up the device's risk and evaluates the policies: the
// per-request decision work, without HTTP.
func (p *Proxy) decide(s *Snapshot, cr *policy.CompiledRoute, id *Identity, dev Device) (policy.Facts, policy.Decision) {
	now := p.now()
	var risk riskcache.Risk
	if dev.ID != "" {
		risk = p.risk.LookupAt(dev.ID, now)
	}
	facts := policy.Facts{
		Now:          now,
		Route:        cr.Name,
		User:         id.User,
		Groups:       id.Groups,
		DeviceID:     dev.ID,
		SelfAsserted: dev.SelfAsserted,
		Risk:         risk.Level,
		Stale:        risk.Stale,
		RiskSince:    risk.Since,
		Vendor:       risk.Vendor,
		Owner:        risk.Owner,
		Platform:     risk.Platform,
		OSVersion:    risk.OSVersion,
	}
	if !risk.Known {
		facts.Risk = policy.LevelUnknown
	}
	return facts, s.set.Evaluate(&facts)
}

// serveReserved hands riskgate's own paths to their handlers.
func (p *Proxy) serveReserved(w http.ResponseWriter, r *http.Request, s *Snapshot, reqID string) {
	var h http.Handler
	switch path := r.URL.Path; {
	case path == pathLogin || path == pathCallback || path == pathLogout:
		h = p.reserved
	case strings.HasPrefix(path, webhookPrefix) && len(path) > len(webhookPrefix):
		h = p.webhook
	}
	if h == nil {
		s.respond.error(w, r, reqID, http.StatusNotFound, "not_found", "Not found.")
		return
	}
	h.ServeHTTP(w, r)
}

// unauthenticated answers a request without a valid identity: a browser is
// sent to the login when there is one; everyone else gets 401 with a
// Bearer challenge (RFC 6750 section 3), error="invalid_token" when a token
// was presented and refused.
func (p *Proxy) unauthenticated(w http.ResponseWriter, r *http.Request, s *Snapshot, rt *routeState, reqID string, err error) {
	badToken := errors.Is(err, ErrInvalidToken)
	if !errors.Is(err, ErrNoCredentials) {
		p.logger.LogAttrs(r.Context(), slog.LevelInfo, "authentication failed",
			slog.String("request_id", reqID), slog.String("route", rt.name), slog.String("error", err.Error()))
	}
	if !badToken && p.reserved != nil && !s.noLogin && wantsHTML(r) {
		http.Redirect(w, r, loginRedirectTo+url.QueryEscape(r.URL.RequestURI()), http.StatusFound)
		return
	}
	challenge := `Bearer realm="riskgate"`
	msg := "Sign in to continue."
	if badToken {
		challenge += `, error="invalid_token"`
		msg = "The access token is invalid or expired."
	}
	w.Header().Set("WWW-Authenticate", challenge)
	s.respond.error(w, r, reqID, http.StatusUnauthorized, "unauthorized", msg)
}

// setIdentityHeaders puts riskgate's headers on the inbound request, from
// which the route's Rewrite copies them to the outbound one.
func setIdentityHeaders(h http.Header, id *Identity, deviceID string, risk policy.Level, decision string) {
	h[headerUser] = []string{id.User}
	if id.Email != "" {
		h[headerEmail] = []string{id.Email}
	}
	if len(id.Groups) > 0 {
		h[headerGroups] = []string{strings.Join(id.Groups, ",")}
	}
	if deviceID != "" {
		h[headerDevice] = []string{deviceID}
	}
	h[headerRisk] = []string{risk.String()}
	h[headerDecision] = []string{decision}
}

// logDecision writes the audit line of one decision.
func (p *Proxy) logDecision(r *http.Request, reqID string, cr *policy.CompiledRoute, id *Identity,
	dev Device, risk policy.Level, decision string, d *policy.Decision) {
	ctx := r.Context()
	if !p.logger.Enabled(ctx, slog.LevelInfo) {
		return
	}
	attrs := make([]slog.Attr, 0, 14)
	attrs = append(attrs,
		slog.String("request_id", reqID),
		slog.String("route", cr.Name),
		slog.String("method", r.Method),
		slog.String("path", r.URL.Path),
		slog.String("user", id.User),
		slog.String("auth", id.Via),
		slog.String("device_id", dev.ID),
		slog.String("device_source", dev.Source),
		slog.String("risk", risk.String()),
		slog.String("decision", decision),
		slog.String("reason", string(d.Reason)),
		slog.String("policy", d.Policy),
	)
	if len(d.ReportOnlyFailed) > 0 {
		attrs = append(attrs,
			slog.Any("report_only_failed", d.ReportOnlyFailed),
			slog.String("report_only_reason", string(d.ReportOnlyReason)))
	}
	p.logger.LogAttrs(ctx, slog.LevelInfo, "decision", attrs...)
}

// SnapshotOptions are what a Snapshot is built from.
type SnapshotOptions struct {
	// Policy is the compiled configuration: routes, policies, device
	// sources (Policy.Config().Devices) and the session cookie name
	// (Policy.Config().Auth.Session.CookieName). Required.
	Policy *policy.Set
	// Authenticators are tried in order; ErrNoCredentials means "try the
	// next".
	Authenticators []Authenticator
	// Pages renders HTML pages. Default: a plain built-in page.
	Pages PageRenderer
	// Metrics receive the counters; the snapshot looks up every label
	// child it needs when it is built. Default: unregistered metrics.
	Metrics *Metrics
	// Transport carries upstream requests; share one between snapshots so
	// that a reload keeps the idle connections. Default: a new
	// NewTransport(TransportOptions{UpstreamTimeout:
	// server.upstream_timeout}).
	Transport http.RoundTripper
	// Logger receives upstream and rendering errors. Default: discard.
	Logger *slog.Logger
	// NoLogin turns the browser sign-in off for this configuration (no
	// redirect_url or session secret): browsers get 401 like API clients.
	NoLogin bool
}

// Snapshot is everything the proxy derives from one configuration: routes
// with their reverse proxies and metric children, device sources,
// authenticators and pages. It is immutable.
type Snapshot struct {
	set        *policy.Set
	auth       []Authenticator
	devices    deviceSources
	cookieName string
	routes     []*routeState // by CompiledRoute.Index
	policies   []policyState // by CompiledPolicy.Index
	respond    *responder
	noRoute    prometheus.Observer // duration of requests matching no route
	noLogin    bool
	bodyIdle   time.Duration // server.body_idle_timeout
}

// routeState is a route's reverse proxy and precomputed metric children.
type routeState struct {
	name           string
	proxy          *httputil.ReverseProxy
	requests       [3][]prometheus.Counter // by decision index, reason index
	duration       prometheus.Observer
	upstreamErrors prometheus.Counter
}

// policyState holds a policy's riskgate_policy_evaluations_total children.
type policyState struct {
	pass, fail, notApplied prometheus.Counter
}

// NewSnapshot builds a Snapshot. It does no I/O and starts no goroutines.
func NewSnapshot(opts SnapshotOptions) (*Snapshot, error) {
	if opts.Policy == nil {
		return nil, errors.New("proxy: snapshot: policy is required")
	}
	cfg := opts.Policy.Config()
	devices, err := compileDeviceSources(cfg.Devices)
	if err != nil {
		return nil, err
	}
	logger := cmp.Or(opts.Logger, slog.New(slog.DiscardHandler))
	m := opts.Metrics
	if m == nil {
		m = NewMetrics(nil)
	}
	transport := opts.Transport
	if transport == nil {
		transport = NewTransport(TransportOptions{UpstreamTimeout: cfg.Server.UpstreamTimeout.Duration})
	}
	plain := NewPlainPages()
	s := &Snapshot{
		noLogin:    opts.NoLogin,
		bodyIdle:   cfg.Server.BodyIdleTimeout.Duration,
		set:        opts.Policy,
		auth:       append([]Authenticator(nil), opts.Authenticators...),
		devices:    devices,
		cookieName: cmp.Or(cfg.Auth.Session.CookieName, DefaultSessionCookie),
		respond:    &responder{pages: plain, plain: plain, logger: logger},
		noRoute:    m.duration.WithLabelValues(routeNone),
	}
	if opts.Pages != nil {
		s.respond.pages = opts.Pages
	}
	buffers := newBufferPool()
	for _, cr := range opts.Policy.Routes() {
		rt := &routeState{
			name:           cr.Name,
			duration:       m.duration.WithLabelValues(cr.Name),
			upstreamErrors: m.upstreamErrors.WithLabelValues(cr.Name),
		}
		for di, decision := range decisionLabels {
			rt.requests[di] = make([]prometheus.Counter, len(reasonLabels))
			for ri, reason := range reasonLabels {
				if validCombination(decision, reason) {
					rt.requests[di][ri] = m.requests.WithLabelValues(cr.Name, decision, string(reason))
				}
			}
		}
		rt.proxy = newReverseProxy(cr.Upstream, transport, buffers, s.cookieName, s.upstreamError(rt, logger))
		if cr.Index != len(s.routes) {
			return nil, fmt.Errorf("proxy: snapshot: route %q has index %d, want %d", cr.Name, cr.Index, len(s.routes))
		}
		s.routes = append(s.routes, rt)
	}
	for _, cp := range opts.Policy.Policies() {
		if cp.Index != len(s.policies) {
			return nil, fmt.Errorf("proxy: snapshot: policy %q has index %d, want %d", cp.Name, cp.Index, len(s.policies))
		}
		mode := string(cp.Mode)
		s.policies = append(s.policies, policyState{
			pass:       m.policyEvaluations.WithLabelValues(cp.Name, mode, "pass"),
			fail:       m.policyEvaluations.WithLabelValues(cp.Name, mode, "fail"),
			notApplied: m.policyEvaluations.WithLabelValues(cp.Name, mode, "not_applied"),
		})
	}
	return s, nil
}

// Policy returns the compiled configuration the snapshot was built from.
func (s *Snapshot) Policy() *policy.Set { return s.set }

// authenticate asks each authenticator in turn. It returns
// ErrNoCredentials when none found a credential it understands.
func (s *Snapshot) authenticate(r *http.Request) (*Identity, error) {
	for _, a := range s.auth {
		id, err := a.Authenticate(r)
		if errors.Is(err, ErrNoCredentials) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if id == nil || id.User == "" {
			return nil, errors.New("proxy: authenticator returned no user")
		}
		return id, nil
	}
	return nil, ErrNoCredentials
}

// upstreamError is a route's ReverseProxy.ErrorHandler: the upstream is
// unreachable, timed out or broke the connection.
func (s *Snapshot) upstreamError(rt *routeState, logger *slog.Logger) func(http.ResponseWriter, *http.Request, error) {
	return func(w http.ResponseWriter, r *http.Request, err error) {
		reqID := r.Header.Get(headerRequestID)
		if errors.Is(err, context.Canceled) && r.Context().Err() != nil {
			// The client went away; nothing to answer, not the upstream's fault.
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		rt.upstreamErrors.Inc()
		logger.LogAttrs(r.Context(), slog.LevelWarn, "upstream error",
			slog.String("request_id", reqID), slog.String("route", rt.name), slog.String("error", err.Error()))
		s.respond.error(w, r, reqID, http.StatusBadGateway, "upstream_unavailable",
			"The application is not reachable right now. Try again in a moment.")
	}
}

// decisionLabels are the decision label values, by decision index.
var decisionLabels = [3]string{decisionAllow, decisionBlock, decisionReportOnlyBlock}

// reasonLabels are the reason label values, by reason index.
var reasonLabels = [...]policy.Reason{
	policy.ReasonAllowed, policy.ReasonExcluded, policy.ReasonRiskTooHigh, policy.ReasonDeviceUnknown,
	policy.ReasonRiskStale, policy.ReasonDeviceMissing, policy.ReasonDeviceNotOwned,
	policy.ReasonPlatformBlocked, policy.ReasonOSTooOld, policy.ReasonNoPolicy,
}

// validCombination reports whether a decision can carry a reason, so that
// only series that can ever count are created.
func validCombination(decision string, reason policy.Reason) bool {
	passing := reason == policy.ReasonAllowed || reason == policy.ReasonExcluded
	switch decision {
	case decisionAllow:
		return passing
	case decisionReportOnlyBlock:
		return !passing && reason != policy.ReasonNoPolicy
	}
	return !passing
}

// reasonIndex returns r's index in reasonLabels, or -1.
func reasonIndex(r policy.Reason) int {
	for i, l := range reasonLabels {
		if l == r {
			return i
		}
	}
	return -1
}

// record counts a decision and its policies' verdicts, and returns the
// decision's label: allow, block, or report_only_block when a report-only
// policy failed on an allowed request.
func (rt *routeState) record(d *policy.Decision, policies []policyState) string {
	di, reason := 0, d.Reason
	switch {
	case !d.Allow:
		di = 1
	case d.ReportOnly > 0:
		di, reason = 2, d.ReportOnlyReason
	}
	if ri := reasonIndex(reason); ri >= 0 && rt.requests[di][ri] != nil {
		rt.requests[di][ri].Inc()
	}
	for i := range policies {
		switch {
		case d.Failed.Has(i):
			policies[i].fail.Inc()
		case d.Applied.Has(i):
			policies[i].pass.Inc()
		default:
			policies[i].notApplied.Inc()
		}
	}
	return decisionLabels[di]
}

// unambiguousPath reports whether path is canonical ("/docs/../ecp",
// "//ecp" and "/ecp\" are not: IIS normalises them) and routes the same
// whether or not an upstream drops ";parameters" (Java servlet containers)
// and trailing dots and spaces of segments (IIS): "/ecp;x/" and "/ecp./"
// are "/ecp/" to them. Ordinary paths cost one scan and no allocation.
func unambiguousPath(set *policy.Set, host, path string) bool {
	if !canonicalPath(path) {
		return false
	}
	alt, changed := upstreamPathVariant(path)
	if !changed {
		return true
	}
	if !canonicalPath(alt) {
		return false
	}
	cr, ok := set.Route(host, path)
	acr, aok := set.Route(host, alt)
	return ok == aok && cr == acr
}

// canonicalPath reports whether p (the decoded request path) is absolute
// and has no "." or ".." segment, no empty segment ("//") and no backslash.
func canonicalPath(p string) bool {
	if p == "" || p[0] != '/' || strings.IndexByte(p, '\\') >= 0 {
		return false
	}
	for i := 1; i <= len(p); {
		j := strings.IndexByte(p[i:], '/')
		if j < 0 {
			j = len(p) - i
		}
		seg := p[i : i+j]
		last := i+j == len(p)
		if seg == "." || seg == ".." || (seg == "" && !last) {
			return false
		}
		i += j + 1
	}
	return true
}

// upstreamPathVariant returns p as a Java servlet container or IIS reads
// it: ";parameters" removed from every segment (Tomcat, Jetty: "/a;x/b" is
// "/a/b", "/a/..;/b" is "/b") and trailing dots and spaces trimmed from
// every segment (Windows file names: "/ecp./" is "/ecp/"). changed is false,
// without allocating, when p reads the same to them.
func upstreamPathVariant(p string) (alt string, changed bool) {
	for i := 0; i < len(p); i++ {
		c := p[i]
		if c == ';' || ((c == '.' || c == ' ') && (i+1 == len(p) || p[i+1] == '/')) {
			changed = true
			break
		}
	}
	if !changed {
		return p, false
	}
	segs := strings.Split(p, "/")
	for i, seg := range segs {
		seg, _, _ = strings.Cut(seg, ";")
		segs[i] = strings.TrimRight(seg, ". ")
	}
	return strings.Join(segs, "/"), true
}

// idleBody moves the connection's read deadline forward before every read
// of a request body, so that a body which stops sending for idle fails
// (and frees the upstream connection) while a long upload that keeps
// sending is never cut, as a plain http.Server.ReadTimeout would.
type idleBody struct {
	rc   io.ReadCloser
	ctl  *http.ResponseController
	idle time.Duration
}

func (b *idleBody) Read(p []byte) (int, error) {
	_ = b.ctl.SetReadDeadline(time.Now().Add(b.idle)) // unsupported (HTTP/2 tests): no deadline
	n, err := b.rc.Read(p)
	if err != nil {
		b.clear()
	}
	return n, err
}

// Close ends the deadline too: once the body is done, a deadline left
// behind would cancel a long response (the server's background read
// would time out).
func (b *idleBody) Close() error {
	b.clear()
	return b.rc.Close()
}

func (b *idleBody) clear() { _ = b.ctl.SetReadDeadline(time.Time{}) }
