package proxy

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

// hostileReturnURLs are return URLs that must never be redirected to: each
// would leave this host, inject a header, or turn into one of those after a
// browser or a later decoding step. Shared by the login, callback and
// logout tests.
var hostileReturnURLs = []string{
	"//evil.example",
	"//evil.example:443",
	"//evil.example/path",
	"/\\evil.example",
	"\\\\evil.example",
	"\\/evil.example",
	"/\t/evil.example",
	"/\n/evil.example",
	"/\r/evil.example",
	"/ /evil.example",
	"/%09/evil.example",
	"/%0a/evil.example",
	"/%0d/evil.example",
	"/%0d%0aSet-Cookie:%20x=y",
	"/mail%0d%0aLocation:%20http://evil.example",
	"https:evil.example",
	"https://evil.example",
	"http://evil.example",
	"HTTPS://EVIL.EXAMPLE",
	"hTtP://evil.example",
	"javascript:alert(1)",
	"JaVaScRiPt:alert(1)",
	"data:text/html,<script>alert(1)</script>",
	"%2f%2fevil.example",
	"/%2f%2fevil.example",
	"/%2F/evil.example",
	"/%5cevil.example",
	"/%5Cevil.example",
	"/%252f%252fevil.example",
	"/%25252f%25252fevil.example",
	"/.//evil.example",
	"/a/..//evil.example",
	"/%2e%2e//evil.example",
	"///evil.example",
	"/\\/evil.example",
	"evil.example",
	"evil.example/path",
	"./evil",
	"?next=//evil.example",
	"#//evil.example",
	"//user:pass@evil.example",
	"/%00/evil",
	"/\x00evil",
	"/\x7fevil",
	"/caf\xc3\xa9",   // raw non-ASCII: browsers disagree on its meaning
	"/%E2%80%AEevil", // decoded bidi override
	"/%E2%80%A8evil", // decoded line separator
	"/%zz",           // malformed escape
	"/" + strings.Repeat("a", 2048),
	"",
}

func TestSafeRedirectRefusesHostile(t *testing.T) {
	for _, raw := range hostileReturnURLs {
		t.Run(raw, func(t *testing.T) {
			got, ok := SafeRedirect(raw)
			assert.False(t, ok)
			assert.Empty(t, got)
		})
	}
}

func TestSafeRedirectAcceptsPaths(t *testing.T) {
	for _, raw := range []string{
		"/",
		"/mail/inbox?x=1#y",
		"/mail/inbox?next=https://evil.example", // a URL in the query is only data
		"/owa/?ae=Item&t=IPM.Note&id=RgAAAA%2FhB%3D",
		"/sites/Team/Shared%20Documents/Plan.docx", // encoded spaces in SharePoint paths
		"/caf%C3%A9",
		"/@evil.example", // no "//": no authority, a path on this host
		"/a/../b",
		"/search?q=%2F%2Fx",
	} {
		t.Run(raw, func(t *testing.T) {
			got, ok := SafeRedirect(raw)
			assert.True(t, ok)
			assert.Equal(t, raw, got)
		})
	}
}

func FuzzSafeRedirect(f *testing.F) {
	for _, s := range hostileReturnURLs {
		f.Add(s)
	}
	f.Add("/mail/inbox?x=1#y")
	f.Fuzz(func(t *testing.T, raw string) {
		got, ok := SafeRedirect(raw)
		if !ok {
			return
		}
		// Whatever passes is a same-host path, also as a browser reads it:
		// browsers drop tabs and newlines and treat "\" as "/".
		if got != raw || len(got) == 0 || got[0] != '/' {
			t.Fatalf("SafeRedirect(%q) = %q", raw, got)
		}
		b := strings.NewReplacer("\t", "", "\n", "", "\r", "", "\\", "/").Replace(got)
		if strings.HasPrefix(b, "//") {
			t.Fatalf("SafeRedirect(%q) passes a scheme-relative URL", raw)
		}
		for i := 0; i < len(got); i++ {
			if got[i] < 0x21 || got[i] >= 0x7f {
				t.Fatalf("SafeRedirect(%q) passes byte %#x", raw, got[i])
			}
		}
	})
}
