// Command robustness checks the client operations recorded by `npm run robustness` for linearizability
// against the slot model (model.go) with porcupine, one partition (slot) at a time.
//
//	robustness -in porcupine.json -out linearizability.json [-viz DIR] [-timeout 60s]
//
// The input is written by robustness/check/linearizability.ts: the recorded history, with every operation
// whose outcome is unknown given a return time after all the others. The output says, per partition, Ok,
// Illegal (not linearizable: an HTML visualization of the longest linearizable prefix goes to DIR) or
// Unknown (the search ran out of time). The exit status is 0 when every partition is Ok, 1 otherwise.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/anishathalye/porcupine"
)

type recordedOp struct {
	Client int    `json:"client"`
	Call   int64  `json:"call"`
	Return int64  `json:"return"`
	Input  Input  `json:"input"`
	Output Output `json:"output"`
}

type partition struct {
	Name       string       `json:"name"`
	Operations []recordedOp `json:"operations"`
}

type inputFile struct {
	Partitions []partition `json:"partitions"`
}

type partitionResult struct {
	Name          string `json:"name"`
	Operations    int    `json:"operations"`
	Result        string `json:"result"`
	Visualization string `json:"visualization,omitempty"`
	DurationMs    int64  `json:"duration_ms"`
}

type outputFile struct {
	Linearizable bool              `json:"linearizable"`
	Partitions   []partitionResult `json:"partitions"`
}

func main() {
	in := flag.String("in", "", "history for porcupine (JSON)")
	out := flag.String("out", "", "where the result goes (JSON; default stdout)")
	viz := flag.String("viz", "", "directory for visualizations of partitions that are not linearizable")
	timeout := flag.Duration("timeout", 60*time.Second, "search time limit per partition")
	flag.Parse()
	if *in == "" {
		fmt.Fprintln(os.Stderr, "usage: robustness -in porcupine.json [-out result.json] [-viz DIR] [-timeout 60s]")
		os.Exit(2)
	}
	res, err := run(*in, *viz, *timeout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "robustness:", err)
		os.Exit(2)
	}
	data, _ := json.MarshalIndent(res, "", "  ")
	if *out == "" {
		os.Stdout.Write(append(data, '\n'))
	} else if err := os.WriteFile(*out, append(data, '\n'), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "robustness:", err)
		os.Exit(2)
	}
	if !res.Linearizable {
		os.Exit(1)
	}
}

func run(path, viz string, timeout time.Duration) (*outputFile, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var f inputFile
	if err := json.Unmarshal(raw, &f); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	res := &outputFile{Linearizable: true}
	for i, p := range f.Partitions {
		r := checkPartition(p, timeout)
		if r.Result != string(porcupine.Ok) {
			res.Linearizable = false
			if viz != "" && r.info != nil {
				file := filepath.Join(viz, fmt.Sprintf("partition-%d.html", i))
				if err := os.MkdirAll(viz, 0o755); err == nil && porcupine.VisualizePath(SlotModel, *r.info, file) == nil {
					r.Visualization = file
				}
			}
		}
		res.Partitions = append(res.Partitions, r.partitionResult)
	}
	return res, nil
}

type checked struct {
	partitionResult
	info *porcupine.LinearizationInfo
}

// checkPartition runs porcupine on one slot's operations.
func checkPartition(p partition, timeout time.Duration) checked {
	ops := make([]porcupine.Operation, 0, len(p.Operations))
	for _, o := range p.Operations {
		ops = append(ops, porcupine.Operation{ClientId: o.Client, Input: o.Input, Call: o.Call, Output: o.Output, Return: o.Return})
	}
	started := time.Now()
	result, info := porcupine.CheckOperationsVerbose(SlotModel, ops, timeout)
	return checked{
		partitionResult: partitionResult{Name: p.Name, Operations: len(ops), Result: string(result), DurationMs: time.Since(started).Milliseconds()},
		info:            &info,
	}
}
