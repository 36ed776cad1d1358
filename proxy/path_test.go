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
