package policy

import (
	"fmt"
	"slices"

	"go.yaml.in/yaml/v3"
)

// warnAt records something that is valid but probably not what the admin
// meant; it does not stop the config from loading.
func (p *parser) warnAt(n *yaml.Node, format string, args ...any) {
	line, col := 1, 1
	if n != nil && n.Line > 0 {
		line, col = n.Line, max(n.Column, 1)
	}
	p.warns = append(p.warns, Error{File: p.file, Line: line, Column: col, Msg: fmt.Sprintf(format, args...)})
}

// warn looks for configurations that load but would surprise: a device
// source that can never yield an id, browser sign-in left off, a route no
// policy names (every request to it is blocked with no_policy).
func (p *parser) warn(c *Config) {
	for i := range c.Devices.Sources {
		s := &c.Devices.Sources[i]
		if s.ClientCert != nil && c.Server.TLS.ClientCAFile == "" {
			p.warnAt(p.node(&s.ClientCert, s), "devices.sources[%d]: client_cert yields no device id without server.tls.client_ca_file", i)
		}
		if s.Header != nil && len(s.Header.TrustedCIDRs) == 0 {
			p.warnAt(p.node(&s.Header, s), "devices.sources[%d]: header %s has no trusted_cidrs, so no peer may set it", i, s.Header.Name)
		}
	}
	if c.Auth.RedirectURL == "" || c.Auth.Session.Secret == "" {
		p.warnAt(p.node(&c.Auth.RedirectURL, &c.Auth.Session, &c.Auth),
			"browser sign-in is off (set auth.redirect_url and auth.session.secret to turn it on): browsers get 401 like API clients")
	}
	for i := range c.Routes {
		r := &c.Routes[i]
		named := slices.ContainsFunc(c.Policies, func(pol Policy) bool {
			return len(pol.Routes) == 0 || slices.Contains(pol.Routes, r.Name)
		})
		if !named {
			p.warnAt(p.node(r), "route %q: no policy applies to it, so every request to it is blocked with no_policy", r.Name)
		}
	}
}
