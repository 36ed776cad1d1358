package riskcache

import (
	lru "github.com/hashicorp/golang-lru/v2/simplelru"
	"runtime"
	"testing"
	"time"
)

func BenchmarkTmpSerial(b *testing.B) {
	c := lookupCache()
	ids := make([]string, 4096)
	for i := range ids {
		ids[i] = benchID(i * 241)
	}
	runtime.GC()
	now := time.Now()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		c.LookupAt(ids[i%len(ids)], now)
	}
}

func BenchmarkTmpMap(b *testing.B) {
	m := map[devKey]uint64{}
	for i := 0; i < 1000000; i++ {
		var k devKey; packGUID(&k, benchID(i))
		m[k] = uint64(i)
	}
	keys := make([]devKey, 4096)
	for i := range keys {
		packGUID(&keys[i], benchID(i*241))
	}
	runtime.GC()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		_ = m[keys[i%len(keys)]]
	}
}

func BenchmarkTmpLRU(b *testing.B) {
	l, _ := lru.NewLRU[devKey, record](1000000, nil)
	for i := 0; i < 1000000; i++ {
		var k devKey
		packGUID(&k, benchID(i))
		l.Add(k, record{owner: uint32(i)})
	}
	keys := make([]devKey, 4096)
	for i := range keys {
		packGUID(&keys[i], benchID(i*241))
	}
	runtime.GC()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		_, _ = l.Peek(keys[i%len(keys)])
	}
}
