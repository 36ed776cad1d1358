package proxy

import (
	"net/url"
	"strings"
	"unicode"
	"unicode/utf8"
)

// maxRedirectLen bounds a return URL; longer ones are refused.
const maxRedirectLen = 2048

// maxRedirectDecodes is how many layers of percent-encoding SafeRedirect
// peels off and re-checks. A value still changing after that is refused.
const maxRedirectDecodes = 4

// SafeRedirect validates a return URL (the rd parameter of login and
// logout, and the one kept in the login flow cookie) and returns it when
// it is a path on this host, so that riskgate cannot be used as an open
// redirector (CWE-601). It accepts only:
//
//   - a value that starts with exactly one "/" (not "//", not "/\"),
//   - made of printable ASCII with no spaces, backslashes or control
//     characters (no tab, CR or LF anywhere: browsers strip them and
//     "/\t/evil" becomes "//evil"),
//   - with no scheme, host or userinfo when parsed,
//   - whose path contains no "//" (so "/.//evil" and "/a/..//evil" cannot
//     collapse to a scheme-relative "//evil" after dot-segment removal),
//
// and every percent-decoded layer of it (up to 4) must pass the same tests,
// except that a decoded layer may hold a plain space and non-ASCII UTF-8
// ("/My%20Files", "/caf%C3%A9"), which are harmless inside a path. Malformed
// escapes are refused.
//
// "/@evil" is accepted: without a leading "//" there is no authority, so a
// browser resolves it to the path "/@evil" on this host.
func SafeRedirect(raw string) (string, bool) {
	if raw == "" || len(raw) > maxRedirectLen {
		return "", false
	}
	if !safeRedirectLayer(raw, true) {
		return "", false
	}
	s := raw
	for i := 0; ; i++ {
		d, err := url.PathUnescape(s)
		if err != nil {
			return "", false
		}
		if d == s {
			break
		}
		if i == maxRedirectDecodes || !safeRedirectLayer(d, false) {
			return "", false
		}
		s = d
	}
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || u.Opaque != "" ||
		!strings.HasPrefix(u.EscapedPath(), "/") {
		return "", false
	}
	return raw, true
}

// safeRedirectLayer checks one layer (raw or decoded) of a return URL.
func safeRedirectLayer(s string, raw bool) bool {
	if len(s) < 1 || s[0] != '/' {
		return false
	}
	if len(s) > 1 && (s[1] == '/' || s[1] == '\\') {
		return false
	}
	if raw {
		for i := 0; i < len(s); i++ {
			c := s[i]
			if c <= ' ' || c == 0x7f || c == '\\' || c >= 0x80 {
				return false
			}
		}
	} else {
		if !utf8.ValidString(s) {
			return false
		}
		for _, c := range s {
			if c == '\\' || (c != ' ' && (unicode.IsSpace(c) || unicode.IsControl(c))) ||
				unicode.Is(unicode.Cf, c) {
				return false
			}
		}
	}
	path := s
	if i := strings.IndexAny(path, "?#"); i >= 0 {
		path = path[:i]
	}
	return !strings.Contains(path, "//")
}
