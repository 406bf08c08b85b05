package proxy

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// DefaultCachePath is where the client remembers the proxy that last worked.
const DefaultCachePath = "/var/lib/iphttps/proxy-cache.json"

// Cache is the proxy cache file. It holds no credentials.
type Cache struct {
	Path string
}

// Entry is what the cache file holds.
type Entry struct {
	Proxy string    `json:"proxy"`
	Saved time.Time `json:"saved"`
}

// Load returns the cached proxy URL.
func (c *Cache) Load() (string, bool) {
	e, err := c.Read()
	if err != nil || e.Proxy == "" {
		return "", false
	}
	return e.Proxy, true
}

// Read returns the cache entry; a missing file is an empty entry.
func (c *Cache) Read() (Entry, error) {
	var e Entry
	b, err := os.ReadFile(c.Path)
	if errors.Is(err, os.ErrNotExist) {
		return e, nil
	}
	if err != nil {
		return e, fmt.Errorf("proxy cache: %w", err)
	}
	if err := json.Unmarshal(b, &e); err != nil {
		return e, fmt.Errorf("proxy cache %s: %w", c.Path, err)
	}
	return e, nil
}

// Store remembers proxy (its URL without credentials), atomically.
func (c *Cache) Store(proxy string) error {
	if e, err := c.Read(); err == nil && e.Proxy == proxy {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(c.Path), 0o755); err != nil {
		return fmt.Errorf("proxy cache: %w", err)
	}
	b, _ := json.Marshal(Entry{Proxy: proxy, Saved: time.Now().UTC()})
	tmp := c.Path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("proxy cache: %w", err)
	}
	return os.Rename(tmp, c.Path)
}

// Reset forgets the cached proxy.
func (c *Cache) Reset() error {
	err := os.Remove(c.Path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("proxy cache: %w", err)
	}
	return nil
}
