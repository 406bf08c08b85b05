package main

import (
	"fmt"
	"os"
	"runtime/pprof"

	"github.com/spf13/cobra"
)

// profiler writes a CPU profile of the whole run when --cpu-profile is given
// (a hidden flag for performance work: `go tool pprof iphttps FILE`).
type profiler struct {
	path string
	f    *os.File
}

func (p *profiler) addFlags(root *cobra.Command) {
	root.PersistentFlags().StringVar(&p.path, "cpu-profile", "", "write a CPU profile of the run to this file")
	root.PersistentFlags().MarkHidden("cpu-profile")
	prev := root.PersistentPreRunE
	root.PersistentPreRunE = func(cmd *cobra.Command, args []string) error {
		if p.path != "" {
			f, err := os.Create(p.path)
			if err != nil {
				return fmt.Errorf("cpu profile: %w", err)
			}
			if err := pprof.StartCPUProfile(f); err != nil {
				f.Close()
				return fmt.Errorf("cpu profile: %w", err)
			}
			p.f = f
		}
		if prev != nil {
			return prev(cmd, args)
		}
		return nil
	}
}

func (p *profiler) stop() {
	if p.f != nil {
		pprof.StopCPUProfile()
		p.f.Close()
	}
}
