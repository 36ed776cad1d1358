package riskcache

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/riskgate/riskgate/policy"
)

// reply is one scripted answer of vendorServer.
type reply struct {
	status int
	body   string
	header map[string]string
}

// vendorServer is a real HTTP server speaking the generic pull API from a
// script: each request takes the next reply for its cursor.
type vendorServer struct {
	*httptest.Server
	t *testing.T

	mu      sync.Mutex
	script  map[string][]reply
	cursors []string // cursors requested, in order
}

func newVendorServer(t *testing.T) *vendorServer {
	v := &vendorServer{t: t, script: map[string][]reply{}}
	v.Server = httptest.NewServer(http.HandlerFunc(v.serve))
	t.Cleanup(v.Close)
	return v
}

// on appends replies for cursor; the last one repeats.
func (v *vendorServer) on(cursor string, rs ...reply) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.script[cursor] = append(v.script[cursor], rs...)
}

func (v *vendorServer) requested() []string {
	v.mu.Lock()
	defer v.mu.Unlock()
	return append([]string(nil), v.cursors...)
}

func (v *vendorServer) serve(w http.ResponseWriter, r *http.Request) {
	assert.Equal(v.t, http.MethodGet, r.Method)
	assert.Equal(v.t, "Bearer s3cret", r.Header.Get("Authorization"))
	assert.Equal(v.t, "2", r.URL.Query().Get("limit"))
	cursor := r.URL.Query().Get("cursor")
	v.mu.Lock()
	v.cursors = append(v.cursors, cursor)
	rs := v.script[cursor]
	var rep reply
	if len(rs) == 0 {
		rep = reply{status: http.StatusNotFound, body: "no script for cursor " + cursor}
	} else {
		rep = rs[0]
		if len(rs) > 1 {
			v.script[cursor] = rs[1:]
		}
	}
	v.mu.Unlock()
	for k, val := range rep.header {
		w.Header().Set(k, val)
	}
	w.Header().Set("Content-Type", "application/json")
	if rep.status == 0 {
		rep.status = http.StatusOK
	}
	w.WriteHeader(rep.status)
	_, _ = w.Write([]byte(rep.body))
}

func (v *vendorServer) generic() *Generic {
	return NewGeneric(policy.Vendor{Name: "acme", Type: "generic", URL: v.URL + "/v1/devices", Token: "s3cret", PageSize: 2},
		v.Client())
}

// page renders a generic API page; devices are "id:risk".
func page(next string, more bool, devices ...string) reply {
	var ds []string
	for _, d := range devices {
		id, risk, _ := strings.Cut(d, ":")
		deleted := risk == "deleted"
		ds = append(ds, fmt.Sprintf(`{"device_id":%q,"risk":%q,"user":"u-%s@corp.example","platform":"iOS","os_version":"17.4","updated_at":"2026-11-26T10:00:00Z","deleted":%t}`,
			id, risk, id, deleted))
	}
	return reply{body: fmt.Sprintf(`{"devices":[%s],"next_cursor":%q,"has_more":%t}`, strings.Join(ds, ","), next, more)}
}

func TestGenericFetch(t *testing.T) {
	v := newVendorServer(t)
	v.on("", page("c1", true, "d1:secured", "d2:HIGH"))
	v.on("c1", page("", false, "d3:medium", "d4:compromised", "d5:"))
	g := v.generic()

	p, err := g.Fetch(t.Context(), "")
	require.NoError(t, err)
	assert.True(t, p.HasMore)
	assert.Equal(t, "c1", p.NextCursor)
	require.Len(t, p.Reports, 2)
	assert.Equal(t, Report{DeviceID: "d1", Level: policy.LevelSecured, User: "u-d1@corp.example", Platform: "ios",
		OSVersion: "17.4", UpdatedAt: time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)}, p.Reports[0])
	assert.Equal(t, policy.LevelHigh, p.Reports[1].Level)

	p, err = g.Fetch(t.Context(), "c1")
	require.NoError(t, err)
	assert.False(t, p.HasMore)
	levels := []policy.Level{p.Reports[0].Level, p.Reports[1].Level, p.Reports[2].Level}
	assert.Equal(t, []policy.Level{policy.LevelMedium, policy.LevelUnknown, policy.LevelUnknown}, levels,
		"unknown risk strings are unknown, never secured")
}

func TestGenericErrors(t *testing.T) {
	tests := []struct {
		name  string
		reply reply
		check func(t *testing.T, err error)
	}{
		{"429 with Retry-After", reply{status: 429, body: "slow down", header: map[string]string{"Retry-After": "7"}},
			func(t *testing.T, err error) {
				he, ok := errors.AsType[*HTTPError](err)
				require.True(t, ok)
				assert.Equal(t, 429, he.Status)
				assert.Equal(t, 7*time.Second, he.RetryAfter)
				assert.Equal(t, KindHTTP429, ErrorKind(err))
			}},
		{"500", reply{status: 500, body: "oops"}, func(t *testing.T, err error) {
			he, ok := errors.AsType[*HTTPError](err)
			require.True(t, ok)
			assert.True(t, he.Retryable())
			assert.Equal(t, KindHTTP5xx, ErrorKind(err))
		}},
		{"401", reply{status: 401}, func(t *testing.T, err error) {
			assert.Equal(t, KindHTTP4xx, ErrorKind(err))
		}},
		{"invalid JSON", reply{body: `{"devices":[{"device_id":`}, func(t *testing.T, err error) {
			assert.ErrorContains(t, err, "riskcache: decode")
			assert.Equal(t, KindDecode, ErrorKind(err))
		}},
		{"missing device id", reply{body: `{"devices":[{"risk":"high"}]}`}, func(t *testing.T, err error) {
			assert.ErrorContains(t, err, "missing device_id")
		}},
		{"no devices array", reply{body: `{"next_cursor":"c"}`}, func(t *testing.T, err error) {
			assert.ErrorContains(t, err, `no "devices" array`)
			assert.Equal(t, KindDecode, ErrorKind(err))
		}},
		{"has_more without next_cursor", reply{body: `{"devices":[],"has_more":true}`}, func(t *testing.T, err error) {
			assert.ErrorContains(t, err, "has_more without next_cursor")
		}},
		{"bad timestamp", reply{body: `{"devices":[{"device_id":"x","updated_at":"yesterday"}]}`}, func(t *testing.T, err error) {
			assert.Equal(t, KindDecode, ErrorKind(err))
		}},
		{"trailing garbage", reply{body: `{"devices":[]} {}`}, func(t *testing.T, err error) {
			assert.Equal(t, KindDecode, ErrorKind(err))
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := newVendorServer(t)
			v.on("", tt.reply)
			p, err := v.generic().Fetch(t.Context(), "")
			require.Error(t, err)
			assert.Empty(t, p.Reports)
			tt.check(t, err)
		})
	}
}

func TestGenericTimeoutAndNetworkKinds(t *testing.T) {
	block := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-block:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(block)
	g := NewGeneric(policy.Vendor{URL: srv.URL, Timeout: policy.Duration{Duration: 50 * time.Millisecond}}, srv.Client())
	_, err := g.Fetch(t.Context(), "")
	require.Error(t, err)
	assert.Equal(t, KindTimeout, ErrorKind(err))

	dead := httptest.NewServer(http.NotFoundHandler())
	dead.Close()
	_, err = NewGeneric(policy.Vendor{URL: dead.URL}, nil).Fetch(context.Background(), "")
	require.Error(t, err)
	assert.Equal(t, KindNetwork, ErrorKind(err))
}

func TestParsePageLimit(t *testing.T) {
	body := `{"devices":[{"device_id":"` + strings.Repeat("x", 100) + `"}]}`
	_, err := ParsePage(strings.NewReader(body), 50)
	require.ErrorContains(t, err, "exceeds 50 bytes")
	p, err := ParsePage(strings.NewReader(body), int64(len(body)))
	require.NoError(t, err)
	assert.Len(t, p.Reports, 1)
}
