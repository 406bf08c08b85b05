package proxy

import (
	"strings"
	"time"

	"github.com/dop251/goja"
)

var weekdays = []string{"SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"}

// pacNow is the time PAC date and time functions see; "GMT" as the last
// argument asks for UTC.
func pacNow(args []goja.Value) (time.Time, []goja.Value) {
	now := time.Now()
	if n := len(args); n > 0 && strings.EqualFold(args[n-1].String(), "GMT") {
		return now.UTC(), args[:n-1]
	}
	return now, args
}

func weekdayRange(args []goja.Value) bool {
	now, args := pacNow(args)
	idx := func(v goja.Value) int {
		for i, d := range weekdays {
			if strings.EqualFold(v.String(), d) {
				return i
			}
		}
		return -1
	}
	if len(args) == 0 {
		return false
	}
	d := int(now.Weekday())
	a := idx(args[0])
	if len(args) == 1 {
		return a == d
	}
	b := idx(args[1])
	if a < 0 || b < 0 {
		return false
	}
	return inRange(d, a, b)
}

// inRange is a <= v <= b, wrapping around when a > b.
func inRange(v, a, b int) bool {
	if a <= b {
		return a <= v && v <= b
	}
	return v >= a || v <= b
}

func timeRange(args []goja.Value) bool {
	now, args := pacNow(args)
	n := make([]int, len(args))
	for i, a := range args {
		n[i] = int(a.ToInteger())
	}
	secs := now.Hour()*3600 + now.Minute()*60 + now.Second()
	switch len(n) {
	case 1:
		return now.Hour() == n[0]
	case 2:
		return inRange(now.Hour(), n[0], n[1]-1) || (n[0] == n[1] && now.Hour() == n[0])
	case 4:
		return inRange(secs, n[0]*3600+n[1]*60, n[2]*3600+n[3]*60-1)
	case 6:
		return inRange(secs, n[0]*3600+n[1]*60+n[2], n[3]*3600+n[4]*60+n[5])
	}
	return false
}

var months = []string{"JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"}

// dateRange supports the forms of the PAC specification: day, month or
// year alone, and ranges of each (dateRange(1, 15), dateRange("JAN", "MAR"),
// dateRange(1995, 1997)); mixed forms compare (month, day) or (year, month).
func dateRange(args []goja.Value) bool {
	now, args := pacNow(args)
	type part struct {
		kind byte // 'd' day, 'm' month, 'y' year
		v    int
	}
	var ps []part
	for _, a := range args {
		s := a.String()
		found := false
		for i, m := range months {
			if strings.EqualFold(s, m) {
				ps = append(ps, part{'m', i + 1})
				found = true
			}
		}
		if found {
			continue
		}
		v := int(a.ToInteger())
		if v > 31 {
			ps = append(ps, part{'y', v})
		} else {
			ps = append(ps, part{'d', v})
		}
	}
	val := func(k byte) int {
		switch k {
		case 'd':
			return now.Day()
		case 'm':
			return int(now.Month())
		}
		return now.Year()
	}
	switch len(ps) {
	case 1:
		return val(ps[0].kind) == ps[0].v
	case 2:
		return inRange(val(ps[0].kind), ps[0].v, ps[1].v)
	case 4: // (day month, day month) or (month year, month year)
		key := func(a, b part) int { return a.v*100 + b.v }
		if ps[0].kind == 'm' {
			cur := now.Year()*100 + int(now.Month())
			return inRange(cur, ps[1].v*100+ps[0].v, ps[3].v*100+ps[2].v)
		}
		cur := int(now.Month())*100 + now.Day()
		return inRange(cur, key(ps[1], ps[0]), key(ps[3], ps[2]))
	}
	return false
}
