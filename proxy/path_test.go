package proxy

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestCanonicalPath(t *testing.T) {
	tests := []struct {
		path string
		want bool
	}{
		{"/", true},
		{"/mail", true},
		{"/mail/", true},
		{"/owa/inbox.aspx", true},
		{"/a/.well-known/x", true},
		{"/a/..b/c", true},
		{"/a/b..", true},
		{"", false},
		{"mail", false},
		{"/docs/../ecp/", false},
		{"/docs/..", false},
		{"/./ecp", false},
		{"/.", false},
		{"/..", false},
		{"//ecp", false},
		{"/docs//ecp", false},
		{"/ecp\\", false},
		{"/docs\\..\\ecp", false},
	}
	for _, tc := range tests {
		t.Run(tc.path, func(t *testing.T) {
			assert.Equal(t, tc.want, canonicalPath(tc.path))
		})
	}
}

func TestUpstreamPathVariant(t *testing.T) {
	tests := []struct {
		path, want string
		changed    bool
	}{
		{"/", "/", false},
		{"/owa/inbox.aspx", "/owa/inbox.aspx", false},
		{"/a/.well-known/x", "/a/.well-known/x", false},
		{"/ecp;x/", "/ecp/", true},
		{"/ecp;jsessionid=1", "/ecp", true},
		{"/owa/..;/ecp", "/owa//ecp", true}, // not canonical either way
		{"/;x/ecp", "//ecp", true},
		{"/ecp./", "/ecp/", true},
		{"/ecp. ./x", "/ecp/x", true},
		{"/file.", "/file", true},
		{"/a/b..", "/a/b", true},
	}
	for _, tc := range tests {
		t.Run(tc.path, func(t *testing.T) {
			got, changed := upstreamPathVariant(tc.path)
			assert.Equal(t, tc.want, got)
			assert.Equal(t, tc.changed, changed)
		})
	}
}

// FuzzPathChecks: the path checks never panic, and the upstream variant is
// a fixed point (reading it again changes nothing).
func FuzzPathChecks(f *testing.F) {
	for _, s := range []string{"/", "/ecp;x/", "/a/..;/b", "/ecp. /", "//", "/a\\b", ";", ".", "/%2e"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		_ = canonicalPath(p)
		alt, changed := upstreamPathVariant(p)
		if !changed && alt != p {
			t.Fatalf("unchanged variant %q of %q", alt, p)
		}
		if again, changed := upstreamPathVariant(alt); changed || again != alt {
			t.Fatalf("variant %q of %q is not a fixed point: %q", alt, p, again)
		}
	})
}
