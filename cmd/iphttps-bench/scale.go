package main

import (
	"errors"

	"github.com/spf13/cobra"
)

// placeholder: replaced by the scale benchmark.
func newScaleCmd() *cobra.Command {
	return &cobra.Command{Use: "scale", RunE: func(*cobra.Command, []string) error { return errors.New("not written yet") }}
}
