// The sequential model the robustness run's client operations are checked against (porcupine): one
// partition is one "slot" of the catalog, a name shared by a few entry ids, so that creates of different
// ids collide on the name (409) and every operation of the slot is checked against one state.
//
// Each entry of the slot is a register with version-checked writes:
//   - create(id): 201 with version 1 when neither the id nor the name is taken; 409 when either is (also,
//     within a fault window only, on a free name: a name reservation left by a writer that died is held
//     until stale, docs/change-feed.md);
//   - update(id, If-Match?): 404 when absent; 412 when If-Match names another version; else the marker and
//     tags change and the version is bumped when something changed (an update that changes nothing answers
//     the entry as it is);
//   - delete(id, If-Match?): 404, 412, or 204 (absent afterwards);
//   - get(id): 404 or the entry as it is.
//
// An operation whose outcome is unknown (a timeout, a reset, a 5xx) is given a return time after every
// other operation by the caller, and here takes whatever effect its input has on the state it meets.
package main

import (
	"fmt"
	"hash/fnv"
	"sort"
	"strings"

	"github.com/anishathalye/porcupine"
)

// MaxIDs is the most entry ids a slot has.
const MaxIDs = 4

// Entry is one entry of the slot as the model holds it.
type Entry struct {
	Exists  bool
	Version int
	Tags    uint32
	Marker  string
}

// State is the slot: its entries by index.
type State [MaxIDs]Entry

// Input is one client operation.
type Input struct {
	Kind    string `json:"kind"` // create | update | delete | get
	ID      int    `json:"id"`
	IfMatch int    `json:"if_match,omitempty"`
	Marker  string `json:"marker,omitempty"`   // create: the marker created with; update: the marker set ("" = unchanged)
	AddTags uint32 `json:"add_tags,omitempty"` // update: $addToSet
	Tags    uint32 `json:"tags,omitempty"`     // create: the initial tags
	// MayRefuse: a 409 on create is allowed on a free name (the operation began within a fault window).
	MayRefuse bool   `json:"may_refuse,omitempty"`
	Op        string `json:"op,omitempty"` // the operation's id in the recorded history (for the report)
}

// Output is what the client was answered.
type Output struct {
	Status  string `json:"status"` // ok | notfound | conflict | stale | unknown
	Version int    `json:"version,omitempty"`
	Tags    uint32 `json:"tags,omitempty"`
	Marker  string `json:"marker,omitempty"`
}

func (s State) nameHolder() int {
	for i, e := range s {
		if e.Exists {
			return i
		}
	}
	return -1
}

// effect is what the operation does to `s`, answered as the service would: the outcome and the next state.
func effect(s State, in Input) (Output, State) {
	if in.ID < 0 || in.ID >= MaxIDs {
		return Output{Status: "invalid"}, s
	}
	e := s[in.ID]
	switch in.Kind {
	case "create":
		if s.nameHolder() >= 0 {
			return Output{Status: "conflict"}, s
		}
		next := s
		next[in.ID] = Entry{Exists: true, Version: 1, Tags: in.Tags, Marker: in.Marker}
		return Output{Status: "ok", Version: 1, Tags: in.Tags, Marker: in.Marker}, next
	case "update":
		if !e.Exists {
			return Output{Status: "notfound"}, s
		}
		if in.IfMatch != 0 && in.IfMatch != e.Version {
			return Output{Status: "stale"}, s
		}
		n := e
		n.Tags |= in.AddTags
		if in.Marker != "" {
			n.Marker = in.Marker
		}
		if n != e {
			n.Version++
		}
		next := s
		next[in.ID] = n
		return Output{Status: "ok", Version: n.Version, Tags: n.Tags, Marker: n.Marker}, next
	case "delete":
		if !e.Exists {
			return Output{Status: "notfound"}, s
		}
		if in.IfMatch != 0 && in.IfMatch != e.Version {
			return Output{Status: "stale"}, s
		}
		next := s
		next[in.ID] = Entry{}
		return Output{Status: "ok"}, next
	case "get":
		if !e.Exists {
			return Output{Status: "notfound"}, s
		}
		return Output{Status: "ok", Version: e.Version, Tags: e.Tags, Marker: e.Marker}, s
	}
	return Output{Status: "invalid"}, s
}

// step: whether the slot in state `s` can answer `in` with `out`, and the state after.
func step(s State, in Input, out Output) (bool, State) {
	want, next := effect(s, in)
	if want.Status == "invalid" {
		return false, s
	}
	if out.Status == "unknown" {
		return true, next
	}
	if in.Kind == "create" && out.Status == "conflict" && in.MayRefuse {
		return true, s
	}
	return want == out, next
}

// SlotModel is the porcupine model of one slot.
var SlotModel = porcupine.Model{
	Init: func() interface{} { return State{} },
	Step: func(state, input, output interface{}) (bool, interface{}) {
		return step(state.(State), input.(Input), output.(Output))
	},
	Equal: func(a, b interface{}) bool { return a.(State) == b.(State) },
	Hash: func(state interface{}) uint64 {
		h := fnv.New64a()
		fmt.Fprintf(h, "%v", state.(State))
		return h.Sum64()
	},
	DescribeOperation: func(input, output interface{}) string {
		return describeOp(input.(Input), output.(Output))
	},
	DescribeState: func(state interface{}) string { return describeState(state.(State)) },
}

func tagList(t uint32) string {
	var out []string
	for i := 0; i < 32; i++ {
		if t&(1<<i) != 0 {
			out = append(out, fmt.Sprintf("t%d", i))
		}
	}
	sort.Strings(out)
	return "[" + strings.Join(out, ",") + "]"
}

func describeOp(in Input, out Output) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s(#%d", in.Kind, in.ID)
	if in.IfMatch != 0 {
		fmt.Fprintf(&b, ", If-Match %d", in.IfMatch)
	}
	if in.Marker != "" {
		fmt.Fprintf(&b, ", marker %s", in.Marker)
	}
	if in.AddTags != 0 {
		fmt.Fprintf(&b, ", +%s", tagList(in.AddTags))
	}
	fmt.Fprintf(&b, ") -> %s", out.Status)
	if out.Status == "ok" && in.Kind != "delete" {
		fmt.Fprintf(&b, " v%d %s %s", out.Version, tagList(out.Tags), out.Marker)
	}
	if in.Op != "" {
		fmt.Fprintf(&b, " [%s]", in.Op)
	}
	return b.String()
}

func describeState(s State) string {
	var parts []string
	for i, e := range s {
		if e.Exists {
			parts = append(parts, fmt.Sprintf("#%d: v%d %s %s", i, e.Version, tagList(e.Tags), e.Marker))
		}
	}
	if len(parts) == 0 {
		return "(empty)"
	}
	return strings.Join(parts, "; ")
}
