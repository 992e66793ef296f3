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
	"strings"
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
	// Explanation: where the longest linearization found stops, and why (Illegal only).
	Explanation string `json:"explanation,omitempty"`
	DurationMs  int64  `json:"duration_ms"`
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
	r := checked{
		partitionResult: partitionResult{Name: p.Name, Operations: len(ops), Result: string(result), DurationMs: time.Since(started).Milliseconds()},
		info:            &info,
	}
	if result == porcupine.Illegal {
		r.Explanation = explain(ops, info)
	}
	return r
}

// explain says where the longest linearization porcupine found stops: the state it reaches, and the
// operation that must come next (of those left, the one that returned first) with what the model answers
// there instead of what the client got.
func explain(ops []porcupine.Operation, info porcupine.LinearizationInfo) string {
	partials := info.PartialLinearizationsOperations()
	var longest []porcupine.Operation
	for _, part := range partials {
		for _, lin := range part {
			if len(lin) > len(longest) {
				longest = lin
			}
		}
	}
	state := State{}
	done := map[string]bool{}
	for _, o := range longest {
		_, state = step(state, o.Input.(Input), o.Output.(Output))
		done[o.Input.(Input).Op] = true
	}
	var next *porcupine.Operation
	for i := range ops {
		if done[ops[i].Input.(Input).Op] {
			continue
		}
		if next == nil || ops[i].Return < next.Return {
			next = &ops[i]
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "the longest linearization found covers %d of %d operations", len(longest), len(ops))
	if n := len(longest); n > 0 {
		b.WriteString(", ending with ")
		from := n - 3
		if from < 0 {
			from = 0
		}
		for i, o := range longest[from:] {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(describeOp(o.Input.(Input), o.Output.(Output)))
		}
	}
	fmt.Fprintf(&b, "; the slot is then {%s}", describeState(state))
	if next != nil {
		in, out := next.Input.(Input), next.Output.(Output)
		want, _ := effect(state, in)
		fmt.Fprintf(&b, "; no operation left can follow, e.g. %s (called at %.3f s, answered at %.3f s), where the model answers %s", describeOp(in, out), float64(next.Call)/1e6, float64(next.Return)/1e6, describeOp(in, want))
	}
	return b.String()
}
