package riskcache_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"runtime"
	"runtime/metrics"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/riskgate/riskgate/internal/vendorsim"
	"github.com/riskgate/riskgate/riskcache"
)

const (
	benchDevices  = 100_000
	benchPageSize = 1_000
)

// graphPages renders a 100,000-device tenant as Graph pages once, so that
// the benchmark measures the client (fetch, decode, apply), not the server.
func graphPages(b *testing.B, base string) [][]byte {
	b.Helper()
	states := []string{"secured", "lowSeverity", "mediumSeverity", "highSeverity", "unknown", "compromised"}
	oses := []string{"iOS", "Android", "Windows", "macOS"}
	pages := make([][]byte, 0, benchDevices/benchPageSize)
	for p := 0; p < benchDevices/benchPageSize; p++ {
		type dev struct {
			ID         string `json:"id"`
			AAD        string `json:"azureADDeviceId"`
			EAS        string `json:"easDeviceId"`
			UPN        string `json:"userPrincipalName"`
			OS         string `json:"operatingSystem"`
			OSVersion  string `json:"osVersion"`
			State      string `json:"partnerReportedThreatState"`
			LastSyncAt string `json:"lastSyncDateTime"`
		}
		body := struct {
			Context  string `json:"@odata.context"`
			Value    []dev  `json:"value"`
			NextLink string `json:"@odata.nextLink,omitempty"`
		}{Context: "https://graph.microsoft.com/v1.0/$metadata#deviceManagement/managedDevices"}
		for i := p * benchPageSize; i < (p+1)*benchPageSize; i++ {
			body.Value = append(body.Value, dev{
				ID:         fmt.Sprintf("%08x-1111-2222-3333-%012x", i, i),
				AAD:        fmt.Sprintf("%08x-aaaa-bbbb-cccc-%012x", i, i),
				EAS:        fmt.Sprintf("EAS%017X", i),
				UPN:        fmt.Sprintf("user%d@corp.example", i%20000),
				OS:         oses[i%len(oses)],
				OSVersion:  "17.4." + strconv.Itoa(i%3),
				State:      states[i%len(states)],
				LastSyncAt: "2026-11-26T10:00:00Z",
			})
		}
		if p+1 < benchDevices/benchPageSize {
			body.NextLink = base + vendorsim.GraphManagedDevicesPath + "?$top=1000&$skiptoken=" + strconv.Itoa(p+1)
		}
		buf, err := json.Marshal(body)
		if err != nil {
			b.Fatal(err)
		}
		pages = append(pages, buf)
	}
	return pages
}

func graphBenchServer(b *testing.B) *httptest.Server {
	b.Helper()
	var pages [][]byte
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Path == vendorsim.GraphTokenPath {
			_, _ = io.WriteString(w, `{"access_token":"bench","token_type":"Bearer","expires_in":3600}`)
			return
		}
		p, _ := strconv.Atoi(r.URL.Query().Get("$skiptoken"))
		_, _ = w.Write(pages[p])
	}))
	b.Cleanup(srv.Close)
	pages = graphPages(b, srv.URL)
	return srv
}

// peakHeap samples the live heap until stop is closed.
func peakHeap() (stop func() uint64) {
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	done := make(chan struct{})
	var (
		wg   sync.WaitGroup
		peak uint64
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(2 * time.Millisecond)
		defer t.Stop()
		for {
			metrics.Read(sample)
			peak = max(peak, sample[0].Value.Uint64())
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	return func() uint64 {
		close(done)
		wg.Wait()
		return peak
	}
}

// BenchmarkGraphFetch is a full Graph sync of 100,000 devices at 1,000 a
// page: fetch and decode every page.
func BenchmarkGraphFetch(b *testing.B) {
	srv := graphBenchServer(b)
	src := newBenchGraph(b, srv)
	// Look-ups of an empty cache: how long a look-up takes on the busy
	// machine when it never waits for a lock.
	stopLookups := probeLookups(riskcache.New(riskcache.Options{Vendors: []string{"intune"}}), "d1")
	runtime.GC()
	stop := peakHeap()
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		n := 0
		cursor := ""
		for {
			page, err := src.Fetch(context.Background(), cursor)
			if err != nil {
				b.Fatal(err)
			}
			n += len(page.Reports)
			if !page.HasMore {
				break
			}
			cursor = page.NextCursor
		}
		if n != benchDevices {
			b.Fatalf("got %d devices", n)
		}
	}
	b.StopTimer()
	reportLookups(b, stopLookups())
	b.ReportMetric(float64(benchDevices)*float64(b.N)/b.Elapsed().Seconds(), "devices/s")
	b.ReportMetric(float64(stop())/(1<<20), "peak-heap-MB")
}

// BenchmarkGraphSync is the same sync applied into a Cache by the Syncer,
// while a request path looks a device up every millisecond: lookup-max-us
// and lookup-p99-us are how long those look-ups took.
func BenchmarkGraphSync(b *testing.B) {
	srv := graphBenchServer(b)
	src := newBenchGraph(b, srv)
	cache := riskcache.New(riskcache.Options{Size: benchDevices, Vendors: []string{"intune"}})
	syncer := riskcache.NewSyncer(riskcache.SyncerOptions{
		Vendor: "intune", Source: src, Cache: cache,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	stop := peakHeap()
	stopLookups := probeLookups(cache, fmt.Sprintf("%08x-aaaa-bbbb-cccc-%012x", 4242, 4242))
	runtime.GC()
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if err := syncer.SyncOnce(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	lookups := stopLookups()
	if got := cache.Len("intune"); got != benchDevices {
		b.Fatalf("cache holds %d devices", got)
	}
	b.ReportMetric(float64(benchDevices)*float64(b.N)/b.Elapsed().Seconds(), "devices/s")
	b.ReportMetric(float64(stop())/(1<<20), "peak-heap-MB")
	reportLookups(b, lookups)
}

// reportLookups reports the slowest and the 99th percentile look-up.
func reportLookups(b *testing.B, times []time.Duration) {
	if len(times) == 0 {
		return
	}
	slices.Sort(times)
	b.ReportMetric(float64(times[len(times)-1].Microseconds()), "lookup-max-us")
	b.ReportMetric(float64(times[len(times)*99/100].Microseconds()), "lookup-p99-us")
}

// probeLookups looks id up every millisecond until stop is called, which
// returns how long each look-up took.
func probeLookups(c *riskcache.Cache, id string) (stop func() []time.Duration) {
	done := make(chan struct{})
	var (
		wg    sync.WaitGroup
		times []time.Duration
	)
	wg.Go(func() {
		t := time.NewTicker(time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
			}
			start := time.Now()
			c.Lookup(id)
			times = append(times, time.Since(start))
		}
	})
	return func() []time.Duration {
		close(done)
		wg.Wait()
		return times
	}
}

func newBenchGraph(b *testing.B, srv *httptest.Server) riskcache.Source {
	b.Helper()
	src, err := riskcache.NewSource(graphCase().vendor(srv.URL), srv.Client())
	if err != nil {
		b.Fatal(err)
	}
	return src
}
