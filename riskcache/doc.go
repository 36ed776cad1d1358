// Package riskcache holds device risk reported by MTD vendors: the cache,
// one syncer per vendor, the vendor clients, the webhook and the state file.
package riskcache
