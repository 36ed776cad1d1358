package proxy

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"unicode"

	"github.com/riskgate/riskgate/policy"
)

// maxDeviceIDLen caps device ids: longer values are refused, not truncated,
// so that two different ids can never be read as the same device.
const maxDeviceIDLen = 256

// Device source kinds, as logged.
const (
	sourceClaim      = "claim"
	sourceClientCert = "client_cert"
	sourceHeader     = "header"
	sourceQuery      = "query"
)

// Device is the outcome of device identification.
type Device struct {
	// ID is the device id; empty when no source yielded one.
	ID string
	// Source is the kind of the source that yielded ID (claim,
	// client_cert, header, query).
	Source string
	// SelfAsserted is true when the client itself asserted ID (query
	// parameter): it then counts only if the device is registered to the
	// same user.
	SelfAsserted bool
}

// deviceSource is one compiled entry of devices.sources.
type deviceSource struct {
	kind         string
	name         string         // claim, header or query parameter name
	sanURIPrefix string         // client_cert
	trusted      []netip.Prefix // header: peers allowed to set it
	selfAsserted bool
}

// deviceSources identifies a request's device by trying its sources in
// order. It is immutable once compiled.
type deviceSources []deviceSource

// compileDeviceSources turns the configured device sources into an ordered
// list. Errors name the source by its position.
func compileDeviceSources(cfg policy.Devices) (deviceSources, error) {
	var out deviceSources
	var errs []error
	for i, s := range cfg.Sources {
		switch {
		case s.Claim != "":
			out = append(out, deviceSource{kind: sourceClaim, name: s.Claim})
		case s.ClientCert != nil:
			out = append(out, deviceSource{kind: sourceClientCert, sanURIPrefix: s.ClientCert.SANURIPrefix})
		case s.Header != nil:
			if s.Header.Name == "" {
				errs = append(errs, fmt.Errorf("devices.sources[%d].header: name is required", i))
				continue
			}
			ds := deviceSource{kind: sourceHeader, name: http.CanonicalHeaderKey(s.Header.Name)}
			for _, c := range s.Header.TrustedCIDRs {
				p, err := parsePrefix(c)
				if err != nil {
					errs = append(errs, fmt.Errorf("devices.sources[%d].header.trusted_cidrs: %w", i, err))
					continue
				}
				ds.trusted = append(ds.trusted, p)
			}
			out = append(out, ds)
		case s.Query != "":
			out = append(out, deviceSource{kind: sourceQuery, name: s.Query, selfAsserted: true})
		default:
			errs = append(errs, fmt.Errorf("devices.sources[%d]: empty source", i))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("proxy: device sources: %w", err)
	}
	return out, nil
}

// parsePrefix accepts a CIDR or a single address.
func parsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, err
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// identify returns the first device id yielded by a source. id may be nil
// (claim sources then yield nothing).
func (ds deviceSources) identify(r *http.Request, id *Identity) Device {
	// A device header from a peer outside trusted_cidrs is a client's
	// claim: it is not used, and not passed upstream either, where an app
	// might trust it.
	for i := range ds {
		if s := &ds[i]; s.kind == sourceHeader && len(r.Header[s.name]) > 0 && !peerTrusted(r.RemoteAddr, s.trusted) {
			delete(r.Header, s.name)
		}
	}
	for i := range ds {
		s := &ds[i]
		raw := s.lookup(r, id)
		if raw == "" {
			continue
		}
		if v, ok := cleanDeviceID(raw); ok {
			return Device{ID: v, Source: s.kind, SelfAsserted: s.selfAsserted}
		}
	}
	return Device{}
}

func (s *deviceSource) lookup(r *http.Request, id *Identity) string {
	switch s.kind {
	case sourceClaim:
		if id == nil {
			return ""
		}
		v, _ := id.Claims[s.name].(string)
		return v
	case sourceClientCert:
		return clientCertID(r, s.sanURIPrefix)
	case sourceHeader:
		if !peerTrusted(r.RemoteAddr, s.trusted) {
			return ""
		}
		if v := r.Header[s.name]; len(v) == 1 {
			return v[0]
		}
		// Absent or repeated: a repeated header is ambiguous, refuse it.
		return ""
	case sourceQuery:
		if r.URL.RawQuery == "" {
			return ""
		}
		// ASP.NET (Exchange ActiveSync) reads query parameters
		// case-insensitively: "deviceid" is "DeviceId" to it, so every
		// spelling counts, and more than one value is ambiguous.
		var found string
		n := 0
		for k, v := range r.URL.Query() {
			if strings.EqualFold(k, s.name) {
				n += len(v)
				if len(v) > 0 {
					found = v[0]
				}
			}
		}
		if n != 1 {
			return ""
		}
		return found
	}
	return ""
}

// clientCertID reads the device id from the verified client certificate:
// the rest of the first SAN URI starting with prefix, or with no prefix the
// subject common name. Intune's SCEP/PKCS profiles put {{AAD_Device_ID}}
// into either.
func clientCertID(r *http.Request, prefix string) string {
	if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 || len(r.TLS.VerifiedChains[0]) == 0 {
		return ""
	}
	leaf := r.TLS.VerifiedChains[0][0]
	if prefix == "" {
		return leaf.Subject.CommonName
	}
	for _, u := range leaf.URIs {
		if s := u.String(); strings.HasPrefix(s, prefix) {
			return s[len(prefix):]
		}
	}
	return ""
}

// peerTrusted reports whether the connection's peer address is inside one
// of the trusted prefixes.
func peerTrusted(remoteAddr string, trusted []netip.Prefix) bool {
	if len(trusted) == 0 {
		return false
	}
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		host = remoteAddr
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return false
	}
	a = a.Unmap()
	for _, p := range trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// cleanDeviceID trims an id and refuses empty, over-long and
// control-character-bearing values (they would forge log lines and headers).
func cleanDeviceID(s string) (string, bool) {
	s = strings.TrimSpace(s)
	if s == "" || len(s) > maxDeviceIDLen {
		return "", false
	}
	for _, c := range s {
		if unicode.IsControl(c) || c == unicode.ReplacementChar {
			return "", false
		}
	}
	return s, true
}
