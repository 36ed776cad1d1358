package proxy

import (
	"crypto/sha256"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
)

// tokenCache remembers verified credentials (bearer tokens, session
// cookies) so that a client sending the same one on every request pays for
// one verification, not one per request. Entries are keyed by the
// credential's SHA-256, so the cache holds no usable credential, and are
// never used at or after the identity's expiry.
type tokenCache struct {
	lru *lru.Cache[[sha256.Size]byte, *Identity]
}

func newTokenCache(size int) (*tokenCache, error) {
	c, err := lru.New[[sha256.Size]byte, *Identity](size)
	if err != nil {
		return nil, err
	}
	return &tokenCache{lru: c}, nil
}

// get returns the identity verified earlier for the token with hash key,
// provided it is still valid at now. An expired entry is dropped.
func (c *tokenCache) get(key [sha256.Size]byte, now time.Time) (*Identity, bool) {
	id, ok := c.lru.Get(key)
	if !ok {
		return nil, false
	}
	if !now.Before(id.Expiry) {
		c.lru.Remove(key)
		return nil, false
	}
	return id, true
}

// add stores a verified identity. The identity is shared between requests
// and must not be modified afterwards.
func (c *tokenCache) add(key [sha256.Size]byte, id *Identity) {
	c.lru.Add(key, id)
}
