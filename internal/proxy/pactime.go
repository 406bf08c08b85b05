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

// timeRange(h), timeRange(h1, h2), timeRange(h1, m1, h2, m2) and
// timeRange(h1, m1, s1, h2, m2, s2): the start is included, the end is
// not, and a range may wrap past midnight; an empty range is false.
func timeRange(args []goja.Value) bool {
	now, args := pacNow(args)
	n := make([]int, len(args))
	for i, a := range args {
		n[i] = int(a.ToInteger())
	}
	cur := now.Hour()*3600 + now.Minute()*60 + now.Second()
	var from, to int
	switch len(n) {
	case 1:
		return now.Hour() == n[0]
	case 2:
		from, to = n[0]*3600, n[1]*3600
	case 4:
		from, to = n[0]*3600+n[1]*60, n[2]*3600+n[3]*60
	case 6:
		from, to = n[0]*3600+n[1]*60+n[2], n[3]*3600+n[4]*60+n[5]
	default:
		return false
	}
	switch {
	case from == to:
		return false
	case from < to:
		return from <= cur && cur < to
	}
	return cur >= from || cur < to
}

var months = []string{"JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"}

// dateRange as the PAC specification defines it: one day, month or year;
// a (day, month) or (month, year) date or a (day, month, year) date; or a
// range of two of the same form: dateRange(1, 15), dateRange("JAN", "MAR"),
// dateRange(1, "JUN", 15, "AUG"), dateRange(1, "JAN", 2026, 31, "DEC", 2026).
func dateRange(args []goja.Value) bool {
	now, args := pacNow(args)
	type part struct {
		kind byte // 'd' day, 'm' month, 'y' year
		v    int
	}
	ps := make([]part, 0, len(args))
	for _, a := range args {
		if i := monthIndex(a.String()); i > 0 {
			ps = append(ps, part{'m', i})
		} else if v := int(a.ToInteger()); v > 31 {
			ps = append(ps, part{'y', v})
		} else {
			ps = append(ps, part{'d', v})
		}
	}
	value := func(k byte) int {
		switch k {
		case 'd':
			return now.Day()
		case 'm':
			return int(now.Month())
		}
		return now.Year()
	}
	weight := map[byte]int{'y': 10000, 'm': 100, 'd': 1}
	// date folds parts into one comparable number, and the current date's
	// number for the same parts.
	date := func(parts []part) (want, cur int) {
		for _, p := range parts {
			want += p.v * weight[p.kind]
			cur += value(p.kind) * weight[p.kind]
		}
		return want, cur
	}
	switch len(ps) {
	case 1, 3:
		want, cur := date(ps)
		return want == cur
	case 2:
		if ps[0].kind != ps[1].kind { // a (day, month) or (month, year) date
			want, cur := date(ps)
			return want == cur
		}
		return inRange(value(ps[0].kind), ps[0].v, ps[1].v)
	case 4, 6:
		half := len(ps) / 2
		from, cur := date(ps[:half])
		to, _ := date(ps[half:])
		return inRange(cur, from, to)
	}
	return false
}

func monthIndex(s string) int {
	for i, m := range months {
		if strings.EqualFold(s, m) {
			return i + 1
		}
	}
	return 0
}
