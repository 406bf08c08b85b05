package main

import (
	"errors"

	"github.com/spf13/cobra"
)

// placeholder: replaced by the throughput benchmark.
func newThroughputCmd() *cobra.Command {
	return &cobra.Command{Use: "throughput", RunE: func(*cobra.Command, []string) error { return errors.New("not written yet") }}
}
