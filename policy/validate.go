package policy

import (
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"regexp"
	"strings"
	"time"
)

// MaxPolicies is the most policies a configuration may hold (Decision
// records per-policy results in fixed-size Bits).
const MaxPolicies = 256

// Vendor types riskgate has clients for.
var vendorTypes = []string{"generic", "graph", "lookout", "zimperium", "checkpoint"}

var vendorNameRE = regexp.MustCompile(`^[a-z0-9_-]+$`)

// applyDefaults fills every unset field with its documented default.
func (p *parser) applyDefaults(c *Config) {
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	defDur := func(d *Duration, v time.Duration) {
		if d.Duration == 0 {
			d.Duration = v
		}
	}
	def(&c.Server.Listen, "127.0.0.1:8080")
	def(&c.Server.AdminListen, "127.0.0.1:9090")
	defDur(&c.Server.ShutdownTimeout, 15*time.Second)
	defDur(&c.Server.UpstreamTimeout, 30*time.Second)
	defDur(&c.Server.BodyIdleTimeout, 60*time.Second)

	if len(c.Auth.Scopes) == 0 {
		c.Auth.Scopes = []string{"openid", "email", "profile"}
	}
	if len(c.Auth.Audiences) == 0 && c.Auth.ClientID != "" {
		c.Auth.Audiences = []string{c.Auth.ClientID}
	}
	def(&c.Auth.UserClaim, "email")
	def(&c.Auth.GroupsClaim, "groups")
	defDur(&c.Auth.Session.TTL, 8*time.Hour)
	if strings.HasPrefix(strings.ToLower(c.Auth.RedirectURL), "https://") {
		// Served over HTTPS: the __Host- prefix makes browsers refuse a
		// session cookie planted by a sibling subdomain (RFC 6265bis 4.1.3.2).
		def(&c.Auth.Session.CookieName, "__Host-riskgate")
	} else {
		def(&c.Auth.Session.CookieName, "_riskgate")
	}

	defDur(&c.Risk.MaxAge, 24*time.Hour)
	if c.Risk.CacheSize == 0 {
		c.Risk.CacheSize = 100000
	}
	defDur(&c.Risk.StateInterval, time.Minute)
	for i := range c.Risk.Vendors {
		v := &c.Risk.Vendors[i]
		defDur(&v.Interval, 30*time.Second)
		defDur(&v.Timeout, 30*time.Second)
		if v.PageSize == 0 {
			v.PageSize = 1000
		}
	}
	for i := range c.Routes {
		r := &c.Routes[i]
		def(&r.PathPrefix, "/")
		def(&r.DisplayName, r.Name)
	}
	for i := range c.Policies {
		pol := &c.Policies[i]
		if pol.Mode == "" {
			pol.Mode = ModeEnforce
		}
		def(&pol.MaxRisk, "low")
		if pol.RequireDevice == nil {
			pol.RequireDevice = ptr(true)
		}
		if pol.RequireOwnerMatch == nil {
			pol.RequireOwnerMatch = ptr(true)
		}
		if pol.OnUnknown == "" {
			pol.OnUnknown = ActionBlock
		}
		if pol.OnStale == "" {
			pol.OnStale = ActionBlock
		}
	}
	def(&c.Branding.Organization, "your organization")
}

func ptr[T any](v T) *T { return &v }

// validate reports every semantic problem of a decoded, defaulted config.
func (p *parser) validate(c *Config) {
	p.checkAddr(c.Server.Listen, "server.listen", &c.Server.Listen, &c.Server)
	p.checkAddr(c.Server.AdminListen, "server.admin_listen", &c.Server.AdminListen, &c.Server)
	tls := &c.Server.TLS
	if (tls.CertFile == "") != (tls.KeyFile == "") {
		p.errAt(p.node(&tls.CertFile, &tls.KeyFile, tls, &c.Server), "server.tls: set both cert_file and key_file, or neither")
	}
	if tls.ClientCAFile != "" && tls.CertFile == "" {
		p.errAt(p.node(&tls.ClientCAFile, tls), "server.tls.client_ca_file needs cert_file and key_file (mTLS needs TLS)")
	}

	a := &c.Auth
	if a.Issuer == "" {
		p.errAt(p.node(&a.Issuer, a), "auth.issuer is required")
	} else {
		p.checkURL(a.Issuer, "auth.issuer", &a.Issuer)
	}
	if a.ClientID == "" {
		p.errAt(p.node(&a.ClientID, a), "auth.client_id is required")
	}
	if a.RedirectURL != "" {
		p.checkURL(a.RedirectURL, "auth.redirect_url", &a.RedirectURL)
	}
	if s := a.Session.Secret; s != "" && len(s) < 16 {
		p.errAt(p.node(&a.Session.SecretFile, &a.Session.Secret, &a.Session), "auth.session.secret must be at least 16 bytes (got %d)", len(s))
	}
	for i, s := range a.Session.Secrets {
		if len(s) < 16 {
			p.errAt(p.node(&a.Session.Secrets[i], &a.Session.Secrets), "auth.session.secrets[%d] must be at least 16 bytes (got %d)", i, len(s))
		}
	}

	for i := range c.Devices.Sources {
		p.checkSource(&c.Devices.Sources[i], i)
	}

	if c.Risk.CacheSize < 0 {
		p.errAt(p.node(&c.Risk.CacheSize), "risk.cache_size must not be negative")
	}
	vendors := map[string]int{}
	for i := range c.Risk.Vendors {
		p.checkVendor(&c.Risk.Vendors[i], i, vendors)
	}

	routes := map[string]int{}
	hostPrefix := map[[2]string]string{}
	for i := range c.Routes {
		p.checkRoute(&c.Routes[i], i, routes, hostPrefix)
	}

	if len(c.Policies) > MaxPolicies {
		p.errAt(p.node(&c.Policies[MaxPolicies], &c.Policies), "too many policies (%d): at most %d", len(c.Policies), MaxPolicies)
	}
	policies := map[string]int{}
	for i := range c.Policies {
		p.checkPolicy(&c.Policies[i], i, policies, routes, c.Routes)
	}
}

func (p *parser) checkAddr(addr, name string, keys ...any) {
	if _, port, err := net.SplitHostPort(addr); err != nil || port == "" {
		p.errAt(p.node(keys...), "%s: bad address %q (want host:port, e.g. 127.0.0.1:8080)", name, addr)
	}
}

// checkURL requires an absolute http or https URL with a host.
func (p *parser) checkURL(s, name string, keys ...any) {
	if err := checkURL(s); err != nil {
		p.errAt(p.node(keys...), "%s: %v", name, err)
	}
}

func checkURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("bad URL %q (want an absolute http or https URL)", s)
	}
	return nil
}

func (p *parser) checkSource(s *DeviceSource, i int) {
	n := p.node(s)
	kinds := 0
	for _, set := range []bool{s.Claim != "", s.ClientCert != nil, s.Header != nil, s.Query != ""} {
		if set {
			kinds++
		}
	}
	if kinds != 1 {
		p.errAt(n, "devices.sources[%d]: set exactly one of claim, client_cert, header, query", i)
	}
	if h := s.Header; h != nil {
		if h.Name == "" {
			p.errAt(p.node(&h.Name, &s.Header, s), "devices.sources[%d].header: name is required", i)
		}
		for j, c := range h.TrustedCIDRs {
			if _, err := netip.ParsePrefix(c); err != nil {
				p.errAt(p.node(&h.TrustedCIDRs[j], &h.TrustedCIDRs, s), "devices.sources[%d].header: bad CIDR %q (want e.g. 10.0.0.0/8)", i, c)
			}
		}
	}
}

func (p *parser) checkVendor(v *Vendor, i int, seen map[string]int) {
	n := p.node(v)
	pre := fmt.Sprintf("risk.vendors[%d]", i)
	switch {
	case v.Name == "":
		p.errAt(n, "%s: name is required", pre)
	case !vendorNameRE.MatchString(v.Name):
		p.errAt(p.node(&v.Name, v), "%s: name %q may only contain a-z, 0-9, _ and - (it is part of the webhook path)", pre, v.Name)
	default:
		if line, dup := seen[v.Name]; dup {
			p.errAt(p.node(&v.Name, v), "duplicate vendor name %q (first at line %d)", v.Name, line)
		} else {
			seen[v.Name] = p.node(&v.Name, v).Line
		}
	}
	switch {
	case v.Type == "":
		p.errAt(n, "%s: type is required (one of %s)", pre, strings.Join(vendorTypes, ", "))
	case !contains(vendorTypes, v.Type):
		p.errAt(p.node(&v.Type, v), "%s: unknown vendor type %q (want one of %s)", pre, v.Type, strings.Join(vendorTypes, ", "))
	}
	if v.URL == "" {
		p.errAt(n, "%s: url is required", pre)
	} else {
		p.checkURL(v.URL, pre+".url", &v.URL, v)
	}
	if v.TokenURL != "" {
		p.checkURL(v.TokenURL, pre+".token_url", &v.TokenURL, v)
	}
	if v.PageSize < 0 {
		p.errAt(p.node(&v.PageSize, v), "%s.page_size must not be negative", pre)
	}
}

func (p *parser) checkRoute(r *Route, i int, seen map[string]int, hostPrefix map[[2]string]string) {
	n := p.node(r)
	pre := fmt.Sprintf("routes[%d]", i)
	if r.Name == "" {
		p.errAt(n, "%s: name is required", pre)
	} else if line, dup := seen[r.Name]; dup {
		p.errAt(p.node(&r.Name, r), "duplicate route name %q (first at line %d)", r.Name, line)
	} else {
		seen[r.Name] = p.node(&r.Name, r).Line
	}
	if r.Upstream == "" {
		p.errAt(n, "%s: upstream is required", pre)
	} else {
		p.checkURL(r.Upstream, pre+".upstream", &r.Upstream, r)
	}
	if h := r.Host; strings.ContainsAny(h, "/ ") || (strings.Contains(h, ":") && !strings.HasPrefix(h, "[")) {
		p.errAt(p.node(&r.Host, r), "%s.host %q must be a bare host name, without scheme, port or path", pre, h)
	}
	if !strings.HasPrefix(r.PathPrefix, "/") {
		p.errAt(p.node(&r.PathPrefix, r), "%s.path_prefix %q must start with \"/\"", pre, r.PathPrefix)
	}
	key := [2]string{normHost(r.Host), r.PathPrefix}
	if other, dup := hostPrefix[key]; dup && r.Name != "" {
		p.errAt(n, "route %q has the same host and path_prefix as route %q", r.Name, other)
	} else if r.Name != "" {
		hostPrefix[key] = r.Name
	}
}

// normHost is a route host as matched: lower case, "" for any host.
func normHost(h string) string {
	if h == "*" {
		return ""
	}
	return strings.ToLower(h)
}

func (p *parser) checkPolicy(pol *Policy, i int, seen map[string]int, routes map[string]int, all []Route) {
	n := p.node(pol)
	pre := fmt.Sprintf("policies[%d]", i)
	if pol.Name == "" {
		p.errAt(n, "%s: name is required", pre)
	} else if line, dup := seen[pol.Name]; dup {
		p.errAt(p.node(&pol.Name, pol), "duplicate policy name %q (first at line %d)", pol.Name, line)
	} else {
		seen[pol.Name] = p.node(&pol.Name, pol).Line
	}
	if pol.Mode != ModeEnforce && pol.Mode != ModeReportOnly {
		p.errAt(p.node(&pol.Mode, pol), "%s.mode must be enforce or report-only, got %q", pre, pol.Mode)
	}
	var names string // built once, only when a route is missing
	for j, r := range pol.Routes {
		if _, ok := routes[r]; !ok {
			if names == "" {
				list := make([]string, 0, min(len(all), 20))
				for _, rt := range all[:min(len(all), 20)] {
					list = append(list, rt.Name)
				}
				if len(all) > 20 {
					list = append(list, "...")
				}
				names = strings.Join(list, ", ")
			}
			p.errAt(p.node(&pol.Routes[j], &pol.Routes, pol), "%s: route %q does not exist (routes: %s)", pre, r, names)
		}
	}
	if l, err := ParseLevel(pol.MaxRisk); err != nil || l == LevelUnknown {
		p.errAt(p.node(&pol.MaxRisk, pol), "%s.max_risk: unknown risk level %q (want secured, low, medium or high)", pre, pol.MaxRisk)
	} else if l == LevelHigh && pol.OnUnknown == ActionAllow {
		p.errAt(p.node(&pol.OnUnknown, pol), "%s.on_unknown: allow contradicts max_risk high, which lets every level through but needs a device known to a vendor (for a policy that never blocks, use mode: report-only)", pre)
	}
	for _, a := range []struct {
		name string
		v    *Action
	}{{"on_unknown", &pol.OnUnknown}, {"on_stale", &pol.OnStale}} {
		if *a.v != ActionBlock && *a.v != ActionAllow {
			p.errAt(p.node(a.v, pol), "%s.%s must be block or allow, got %q", pre, a.name, *a.v)
		}
	}
	lowerPlat := map[string]string{}
	for plat, v := range pol.MinOS {
		if other, dup := lowerPlat[strings.ToLower(plat)]; dup {
			n, o := p.node(mapEntry{&pol.MinOS, plat}, pol), p.node(mapEntry{&pol.MinOS, other}, pol)
			if o.Line > n.Line || o.Line == n.Line && o.Column > n.Column {
				n = o // report at the second of the two, whatever the map order
			}
			p.errAt(n, "%s.min_os: %s and %s name the same platform", pre, min(plat, other), max(plat, other))
		}
		lowerPlat[strings.ToLower(plat)] = plat
		if !validVersion(v) {
			p.errAt(p.node(mapEntry{&pol.MinOS, plat}, &pol.MinOS, pol), "%s.min_os.%s: bad version %q (want dotted numbers like \"16.4\")", pre, plat, v)
		}
	}
	for _, list := range []struct {
		name string
		v    *[]string
	}{{"groups", &pol.Groups}, {"exclude_groups", &pol.ExcludeGroups}, {"platforms", &pol.Platforms}, {"block_platforms", &pol.BlockPlatforms}} {
		for j, s := range *list.v {
			if strings.TrimSpace(s) == "" {
				p.errAt(p.node(&(*list.v)[j], list.v, pol), "%s.%s[%d] is empty", pre, list.name, j)
			} else if strings.TrimSpace(s) != s {
				p.errAt(p.node(&(*list.v)[j], list.v, pol), "%s.%s[%d] %q has leading or trailing spaces (it would never match)", pre, list.name, j, s)
			}
		}
	}
}

func contains(list []string, s string) bool {
	for _, e := range list {
		if e == s {
			return true
		}
	}
	return false
}
