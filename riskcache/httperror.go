package riskcache

import (
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// HTTPError is a vendor's non-success HTTP answer. Syncers retry 429 and 5xx,
// waiting at least RetryAfter when the vendor said so.
type HTTPError struct {
	Status     int
	RetryAfter time.Duration
	// Body is the start of the response body, for the log.
	Body string
}

func (e *HTTPError) Error() string {
	return fmt.Sprintf("http status %d: %s", e.Status, e.Body)
}

// Retryable reports whether the request may be tried again.
func (e *HTTPError) Retryable() bool {
	return e.Status == http.StatusTooManyRequests || e.Status >= 500
}

// ParseRetryAfter reads a Retry-After header: delay-seconds or an HTTP-date
// (RFC 9110 section 10.2.3). Zero when absent or unparseable.
func ParseRetryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil {
		if s < 0 {
			return 0
		}
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return d
		}
	}
	return 0
}
