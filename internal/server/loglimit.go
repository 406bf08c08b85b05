package server

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// logEvery is the most often one kind of event is logged; the others are
// counted and reported with the next line of that kind.
const logEvery = time.Second

// logLimiter keeps a flood (a thousand refused connections, a scan) from
// flooding the log: one line per kind per logEvery, carrying the number of
// lines left out since the last. The counters count every event.
type logLimiter struct {
	mu    sync.Mutex
	kinds map[string]*logKind
}

type logKind struct {
	last       time.Time
	suppressed int
}

// allow reports whether an event of kind may be logged now, and how many
// of that kind were left out before it.
func (l *logLimiter) allow(kind string, now time.Time) (bool, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.kinds == nil {
		l.kinds = map[string]*logKind{}
	}
	k := l.kinds[kind]
	if k == nil {
		k = &logKind{}
		l.kinds[kind] = k
	}
	if !k.last.IsZero() && now.Sub(k.last) < logEvery {
		k.suppressed++
		return false, 0
	}
	n := k.suppressed
	k.last, k.suppressed = now, 0
	return true, n
}

// logLimited logs msg unless a line of the same kind was logged less than
// logEvery ago.
func (s *Server) logLimited(kind string, level slog.Level, msg string, args ...any) {
	if !s.log.Enabled(context.Background(), level) {
		return
	}
	ok, left := s.logs.allow(kind, time.Now())
	if !ok {
		return
	}
	if left > 0 {
		args = append(args, "similar_not_logged", left)
	}
	s.log.Log(context.Background(), level, msg, args...)
}
