package policy

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestCompareVersions(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{"16.10", "16.9", 1},
		{"16.9", "16.10", -1},
		{"17", "17.0", 0},
		{"17.0.0", "17", 0},
		{"17.4.1 (b)", "17.4.1", 0},
		{"17.4.1 (b)", "17.4.2", -1},
		{"v14", "14.0", 0},
		{"12", "12.0.1", -1},
		{"016.1", "16.01", 0},
		{"99999999999999999999999.1", "99999999999999999999998.9", 1},
		{"", "1", -1},
		{"", "", 0},
		{"abc", "0", 0},
	}
	for _, tt := range tests {
		t.Run(tt.a+"_vs_"+tt.b, func(t *testing.T) {
			assert.Equal(t, tt.want, CompareVersions(tt.a, tt.b))
			assert.Equal(t, -tt.want, CompareVersions(tt.b, tt.a), "antisymmetric")
		})
	}
}

func TestValidVersion(t *testing.T) {
	for _, v := range []string{"16", "16.4", "12.0.1"} {
		assert.True(t, validVersion(v), v)
	}
	for _, v := range []string{"", "16.", ".16", "16..4", "16.x", "sixteen", "v16"} {
		assert.False(t, validVersion(v), v)
	}
}
