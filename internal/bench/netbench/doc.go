// Package netbench is the plumbing of the benchmarks: a pair of network
// namespaces joined by a veth, processes started inside them with a bounded
// lifetime and stopped by PID, the CPU time of a process tree, the
// machine's quiet check, the statistics of a network device and the lock
// that keeps two runs of one benchmark apart.
//
// Everything here runs as root and acts only on the namespaces and processes
// its caller names.
package netbench
