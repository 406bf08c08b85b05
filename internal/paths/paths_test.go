package paths

import (
	"context"
	"testing"

	hostside "github.com/iphttps/iphttps/internal/client"
	"github.com/iphttps/iphttps/internal/status"
)

// statusOnly is a transport that only sets its status block: enough for
// the selector's bookkeeping of what each method owns.
type statusOnly struct {
	name string
	init func(*status.Interface)
}

func (t statusOnly) Name() string                                       { return t.name }
func (t statusOnly) InitStatus(st *status.Interface)                    { t.init(st) }
func (statusOnly) Connect(context.Context, hostside.Link) (bool, error) { return false, nil }

// TestInitStatusKeepsBlocksApart: each method's view of the status holds
// its own block only, so each path's status is in its own words.
func TestInitStatusKeepsBlocksApart(t *testing.T) {
	sel, err := New(Options{Methods: []Method{
		{Name: "6to4", Transport: statusOnly{"6to4", func(st *status.Interface) {
			st.SixToFour = &status.SixToFourState{ServiceState: "enabled", State: "testing"}
		}}},
		{Name: "Teredo", Transport: statusOnly{"Teredo", func(st *status.Interface) {
			st.TeredoClient = &status.TeredoState{State: "offline", Error: "none"}
		}}},
		{Name: "IP-HTTPS", Transport: statusOnly{"IP-HTTPS", func(st *status.Interface) {
			st.Name, st.InterfaceStatus = "IPHTTPSInterface", "Connecting to the IPHTTPS server"
		}}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	var st status.Interface
	sel.InitStatus(&st)
	if st.SixToFour == nil || st.TeredoClient == nil || len(st.Paths) != 3 {
		t.Fatalf("daemon status: %+v", st)
	}
	want := []string{"6to4 Service State enabled, testing", "Teredo State offline, Error none", "Connecting to the IPHTTPS server"}
	for i, w := range want {
		if got := ownStatus(sel.shadows[i]); got != w {
			t.Errorf("method %d: status %q, want %q", i, got, w)
		}
	}
}

func TestNewRefuses(t *testing.T) {
	tr := statusOnly{"x", func(*status.Interface) {}}
	for _, o := range []Options{
		{},
		{Methods: []Method{{Name: "a", Transport: tr}, {Name: "a", Transport: tr}}},
		{Methods: []Method{{Name: "a"}}},
	} {
		if _, err := New(o); err == nil {
			t.Errorf("New(%+v) accepted", o)
		}
	}
}
