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

// Entry is what the cache file holds: the proxy that last carried a working
// tunnel to Server (host:port).
type Entry struct {
	Server string    `json:"server"`
	Proxy  string    `json:"proxy"`
	Saved  time.Time `json:"saved"`
}

// Load returns the proxy cached for server (host:port).
func (c *Cache) Load(server string) (string, bool) {
	e, err := c.Read()
	if err != nil || e.Proxy == "" || e.Server != server {
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

// Store remembers that proxy (its URL without credentials) worked for
// server, replacing the file atomically.
func (c *Cache) Store(server, proxy string) error {
	dir := filepath.Dir(c.Path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("proxy cache: %w", err)
	}
	b, _ := json.Marshal(Entry{Server: server, Proxy: proxy, Saved: time.Now().UTC()})
	f, err := os.CreateTemp(dir, ".proxy-cache-*")
	if err != nil {
		return fmt.Errorf("proxy cache: %w", err)
	}
	_, err = f.Write(append(b, '\n'))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(f.Name(), 0o644)
	}
	if err == nil {
		err = os.Rename(f.Name(), c.Path)
	}
	if err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("proxy cache: %w", err)
	}
	return nil
}

// Reset forgets the cached proxy.
func (c *Cache) Reset() error {
	err := os.Remove(c.Path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("proxy cache: %w", err)
	}
	return nil
}
