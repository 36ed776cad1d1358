package riskcache_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/riskgate/riskgate/internal/vendorsim"
	"github.com/riskgate/riskgate/policy"
	"github.com/riskgate/riskgate/riskcache"
)

// simulator is what every vendorsim handler offers the tests.
type simulator interface {
	http.Handler
	Inject(vendorsim.Fault)
	RevokeTokens()
	Requests() int
	TokenRequests() int
}

// vendorCase wires one vendor type to its simulator.
type vendorCase struct {
	typ string
	sim func(*vendorsim.Store) simulator
	// vendor is a correct configuration for a simulator at url.
	vendor func(url string) policy.Vendor
	// wrong has a wrong credential.
	wrong func(url string) policy.Vendor
	// fullOnly: every sync is a full sync (no delta cursor).
	fullOnly bool
}

func vendorCases() []vendorCase {
	return []vendorCase{
		{
			typ: riskcache.TypeGraph,
			sim: func(s *vendorsim.Store) simulator { return vendorsim.NewGraph(s, "app", "s3cret") },
			vendor: func(u string) policy.Vendor {
				return policy.Vendor{Name: "intune", Type: "graph", URL: u, TokenURL: u + vendorsim.GraphTokenPath, ClientID: "app", ClientSecret: "s3cret"}
			},
			wrong: func(u string) policy.Vendor {
				return policy.Vendor{Name: "intune", Type: "graph", URL: u, TokenURL: u + vendorsim.GraphTokenPath, ClientID: "app", ClientSecret: "nope"}
			},
			fullOnly: true,
		},
		{
			typ: riskcache.TypeLookout,
			sim: func(s *vendorsim.Store) simulator { return vendorsim.NewLookout(s, "app-key") },
			vendor: func(u string) policy.Vendor {
				return policy.Vendor{Name: "lookout", Type: "lookout", URL: u, APIKey: "app-key"}
			},
			wrong: func(u string) policy.Vendor {
				return policy.Vendor{Name: "lookout", Type: "lookout", URL: u, APIKey: "other-key"}
			},
			fullOnly: true,
		},
		{
			typ: riskcache.TypeZimperium,
			sim: func(s *vendorsim.Store) simulator { return vendorsim.NewZimperium(s, "zid", "zsecret") },
			vendor: func(u string) policy.Vendor {
				return policy.Vendor{Name: "zimperium", Type: "zimperium", URL: u, ClientID: "zid", ClientSecret: "zsecret"}
			},
			wrong: func(u string) policy.Vendor {
				return policy.Vendor{Name: "zimperium", Type: "zimperium", URL: u, ClientID: "zid", ClientSecret: "bad"}
			},
			fullOnly: true,
		},
		{
			typ: riskcache.TypeCheckPoint,
			sim: func(s *vendorsim.Store) simulator { return vendorsim.NewCheckPoint(s, "cid", "ckey") },
			vendor: func(u string) policy.Vendor {
				return policy.Vendor{Name: "harmony", Type: "checkpoint", URL: u, ClientID: "cid", ClientSecret: "ckey"}
			},
			wrong: func(u string) policy.Vendor {
				return policy.Vendor{Name: "harmony", Type: "checkpoint", URL: u, ClientID: "cid", ClientSecret: "bad"}
			},
			fullOnly: true,
		},
		{
			typ: riskcache.TypeGeneric,
			sim: func(s *vendorsim.Store) simulator { return vendorsim.NewGeneric(s, "gtoken") },
			vendor: func(u string) policy.Vendor {
				return policy.Vendor{Name: "acme", Type: "generic", URL: u + "/v1/devices", Token: "gtoken"}
			},
			wrong: func(u string) policy.Vendor {
				return policy.Vendor{Name: "acme", Type: "generic", URL: u + "/v1/devices", Token: "bad"}
			},
		},
	}
}

// startSim serves a simulator over a new store.
func startSim(t *testing.T, vc vendorCase) (*vendorsim.Store, simulator, *httptest.Server) {
	t.Helper()
	store := vendorsim.NewStore(nil)
	sim := vc.sim(store)
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	return store, sim, srv
}

func newSource(t *testing.T, v policy.Vendor, client *http.Client) riskcache.Source {
	t.Helper()
	src, err := riskcache.NewSource(v, client)
	require.NoError(t, err)
	return src
}

// fullSync fetches pages until HasMore is false and returns the reports,
// the last NextCursor and the number of pages.
func fullSync(t *testing.T, src riskcache.Source, cursor string) ([]riskcache.Report, string, int) {
	t.Helper()
	var all []riskcache.Report
	for pages := 1; ; pages++ {
		require.Less(t, pages, 1000, "paging does not end")
		page, err := src.Fetch(context.Background(), cursor)
		require.NoError(t, err)
		all = append(all, page.Reports...)
		cursor = page.NextCursor
		if !page.HasMore {
			return all, cursor, pages
		}
	}
}

func seed(store *vendorsim.Store, n int) {
	for i := range n {
		store.Set(vendorsim.Device{
			ID:        fmt.Sprintf("dev-%03d", i),
			MDMID:     fmt.Sprintf("aad-%03d", i),
			User:      fmt.Sprintf("user%d@corp.example", i),
			Platform:  "ios",
			OSVersion: "17.4",
			Level:     policy.Level(1 + i%4),
		})
	}
}

func TestNewSourceUnknownType(t *testing.T) {
	_, err := riskcache.NewSource(policy.Vendor{Name: "x", Type: "mobileiron"}, nil)
	require.Error(t, err)
	for _, want := range []string{`"mobileiron"`, "generic", "graph", "lookout", "zimperium", "checkpoint"} {
		assert.Contains(t, err.Error(), want)
	}
}

func TestNewSourceMissingCredentials(t *testing.T) {
	for _, typ := range []string{"graph", "lookout", "zimperium", "checkpoint"} {
		t.Run(typ, func(t *testing.T) {
			_, err := riskcache.NewSource(policy.Vendor{Name: "x", Type: typ, URL: "http://127.0.0.1:1"}, nil)
			require.Error(t, err)
		})
	}
}

func TestSourcesPaging(t *testing.T) {
	for _, vc := range vendorCases() {
		t.Run(vc.typ, func(t *testing.T) {
			store, sim, srv := startSim(t, vc)
			seed(store, 25)
			v := vc.vendor(srv.URL)
			v.PageSize = 10
			src := newSource(t, v, srv.Client())

			reports, next, pages := fullSync(t, src, "")
			require.Len(t, reports, 25)
			assert.GreaterOrEqual(t, pages, 3)
			seen := map[string]bool{}
			for _, r := range reports {
				assert.False(t, seen[r.DeviceID], "duplicate %s", r.DeviceID)
				seen[r.DeviceID] = true
			}
			if vc.fullOnly {
				assert.Empty(t, next, "no delta: the last page's cursor is empty")
			} else {
				assert.NotEmpty(t, next)
			}
			if vc.typ != riskcache.TypeGeneric {
				assert.Equal(t, 1, sim.TokenRequests(), "the access token is reused across pages")
			}
		})
	}
}

func TestSourcesAuthFailure(t *testing.T) {
	for _, vc := range vendorCases() {
		t.Run(vc.typ, func(t *testing.T) {
			store, _, srv := startSim(t, vc)
			seed(store, 3)
			src := newSource(t, vc.wrong(srv.URL), srv.Client())
			_, err := src.Fetch(context.Background(), "")
			var he *riskcache.HTTPError
			require.ErrorAs(t, err, &he)
			assert.Equal(t, http.StatusUnauthorized, he.Status)
			assert.False(t, he.Retryable())
		})
	}
}

func TestSourcesRevokedTokenIsRefetched(t *testing.T) {
	for _, vc := range vendorCases() {
		if vc.typ == riskcache.TypeGeneric {
			continue // static token
		}
		t.Run(vc.typ, func(t *testing.T) {
			store, sim, srv := startSim(t, vc)
			seed(store, 3)
			src := newSource(t, vc.vendor(srv.URL), srv.Client())
			_, err := src.Fetch(context.Background(), "")
			require.NoError(t, err)
			sim.RevokeTokens()

			_, err = src.Fetch(context.Background(), "")
			var he *riskcache.HTTPError
			require.ErrorAs(t, err, &he)
			require.Equal(t, http.StatusUnauthorized, he.Status)

			page, err := src.Fetch(context.Background(), "")
			require.NoError(t, err)
			assert.Len(t, page.Reports, 3)
			assert.Equal(t, 2, sim.TokenRequests())
		})
	}
}

func TestSourcesRetryAfter(t *testing.T) {
	for _, vc := range vendorCases() {
		for _, tc := range []struct {
			name   string
			fault  vendorsim.Fault
			status int
			after  time.Duration
		}{
			{"429 seconds", vendorsim.Fault{Status: 429, RetryAfter: "7"}, 429, 7 * time.Second},
			{"503 seconds", vendorsim.Fault{Status: 503, RetryAfter: "120"}, 503, 2 * time.Minute},
			{"500 without", vendorsim.Fault{Status: 500}, 500, 0},
		} {
			t.Run(vc.typ+"/"+tc.name, func(t *testing.T) {
				store, sim, srv := startSim(t, vc)
				seed(store, 3)
				src := newSource(t, vc.vendor(srv.URL), srv.Client())
				sim.Inject(tc.fault)

				_, err := src.Fetch(context.Background(), "")
				var he *riskcache.HTTPError
				require.ErrorAs(t, err, &he)
				assert.Equal(t, tc.status, he.Status)
				assert.Equal(t, tc.after, he.RetryAfter)
				assert.True(t, he.Retryable())

				page, err := src.Fetch(context.Background(), "")
				require.NoError(t, err, "the fault is over")
				assert.Len(t, page.Reports, 3)
			})
		}
	}
}

func TestSourcesTokenEndpointThrottled(t *testing.T) {
	for _, vc := range vendorCases() {
		if vc.typ == riskcache.TypeGeneric {
			continue
		}
		t.Run(vc.typ, func(t *testing.T) {
			store, sim, srv := startSim(t, vc)
			seed(store, 1)
			src := newSource(t, vc.vendor(srv.URL), srv.Client())
			sim.Inject(vendorsim.Fault{Token: true, Status: 429, RetryAfter: "30"})
			_, err := src.Fetch(context.Background(), "")
			var he *riskcache.HTTPError
			require.ErrorAs(t, err, &he)
			assert.Equal(t, 429, he.Status)
			assert.Equal(t, 30*time.Second, he.RetryAfter)
		})
	}
}

func TestSourcesGarbageBody(t *testing.T) {
	for _, vc := range vendorCases() {
		t.Run(vc.typ, func(t *testing.T) {
			store, sim, srv := startSim(t, vc)
			seed(store, 3)
			src := newSource(t, vc.vendor(srv.URL), srv.Client())
			sim.Inject(vendorsim.Fault{Garbage: true})
			_, err := src.Fetch(context.Background(), "")
			require.Error(t, err)
			var he *riskcache.HTTPError
			assert.False(t, errors.As(err, &he), "a bad body is not an HTTP status error: %v", err)
		})
	}
}

func TestSourcesRequestTimeout(t *testing.T) {
	block := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-block
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(block) })
	for _, vc := range vendorCases() {
		t.Run(vc.typ, func(t *testing.T) {
			v := vc.vendor(srv.URL)
			v.Timeout = policy.Duration{Duration: 50 * time.Millisecond}
			src := newSource(t, v, srv.Client())
			_, err := src.Fetch(context.Background(), "")
			require.Error(t, err)
			assert.ErrorIs(t, err, context.DeadlineExceeded)
		})
	}
}
