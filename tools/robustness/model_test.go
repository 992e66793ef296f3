// Histories made by hand: the model accepts what the service may answer and refuses what it must not.
package main

import (
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
)

type op struct {
	call, ret int64
	in        Input
	out       Output
}

func check(t *testing.T, ops []op) porcupine.CheckResult {
	t.Helper()
	var h []porcupine.Operation
	for i, o := range ops {
		h = append(h, porcupine.Operation{ClientId: i, Call: o.call, Return: o.ret, Input: o.in, Output: o.out})
	}
	return porcupine.CheckOperationsTimeout(SlotModel, h, 10*time.Second)
}

func expect(t *testing.T, want porcupine.CheckResult, ops []op) {
	t.Helper()
	if got := check(t, ops); got != want {
		t.Fatalf("got %s, want %s", got, want)
	}
}

const never = 1 << 40

func create(id int, marker string) Input { return Input{Kind: "create", ID: id, Marker: marker} }
func set(id int, marker string, ifMatch int) Input {
	return Input{Kind: "update", ID: id, Marker: marker, IfMatch: ifMatch}
}
func get(id int) Input { return Input{Kind: "get", ID: id} }
func ok(v int, marker string) Output { return Output{Status: "ok", Version: v, Marker: marker} }

func TestSequentialHistoryIsLinearizable(t *testing.T) {
	expect(t, porcupine.Ok, []op{
		{0, 1, create(0, "a"), ok(1, "a")},
		{2, 3, set(0, "b", 1), ok(2, "b")},
		{4, 5, set(0, "c", 1), Output{Status: "stale"}},
		{6, 7, Input{Kind: "update", ID: 0, AddTags: 1}, Output{Status: "ok", Version: 3, Tags: 1, Marker: "b"}},
		{8, 9, Input{Kind: "update", ID: 0, AddTags: 1}, Output{Status: "ok", Version: 3, Tags: 1, Marker: "b"}},
		{10, 11, get(0), Output{Status: "ok", Version: 3, Tags: 1, Marker: "b"}},
		{12, 13, Input{Kind: "delete", ID: 0, IfMatch: 3}, Output{Status: "ok"}},
		{14, 15, get(0), Output{Status: "notfound"}},
		{16, 17, create(1, "d"), ok(1, "d")},
	})
}

func TestStaleReadAfterAcknowledgedWriteIsIllegal(t *testing.T) {
	expect(t, porcupine.Illegal, []op{
		{0, 1, create(0, "a"), ok(1, "a")},
		{2, 3, set(0, "b", 0), ok(2, "b")},
		{4, 5, get(0), ok(1, "a")},
	})
}

func TestLostUpdateIsIllegal(t *testing.T) {
	// Two unconditional writes both answered version 2: one of them was lost.
	expect(t, porcupine.Illegal, []op{
		{0, 1, create(0, "a"), ok(1, "a")},
		{2, 5, set(0, "b", 0), ok(2, "b")},
		{3, 6, set(0, "c", 0), ok(2, "c")},
	})
}

func TestTwoEntriesWithOneNameIsIllegal(t *testing.T) {
	expect(t, porcupine.Illegal, []op{
		{0, 3, create(0, "a"), ok(1, "a")},
		{1, 4, create(1, "b"), ok(1, "b")},
	})
}

func TestConflictOnAFreeNameOnlyInAFaultWindow(t *testing.T) {
	refused := Output{Status: "conflict"}
	expect(t, porcupine.Illegal, []op{{0, 1, create(0, "a"), refused}})
	in := create(0, "a")
	in.MayRefuse = true
	expect(t, porcupine.Ok, []op{{0, 1, in, refused}})
}

func TestIfMatchOnAStaleVersionMustFail(t *testing.T) {
	expect(t, porcupine.Illegal, []op{
		{0, 1, create(0, "a"), ok(1, "a")},
		{2, 3, set(0, "b", 0), ok(2, "b")},
		{4, 5, set(0, "c", 1), ok(3, "c")},
	})
}

func TestUnknownOutcomeMayHaveHappenedOrNot(t *testing.T) {
	unknown := Output{Status: "unknown"}
	// It happened: a later read sees it.
	expect(t, porcupine.Ok, []op{
		{0, 1, create(0, "a"), ok(1, "a")},
		{2, never, set(0, "b", 0), unknown},
		{5, 6, get(0), ok(2, "b")},
	})
	// It did not (yet): a later read does not see it.
	expect(t, porcupine.Ok, []op{
		{0, 1, create(0, "a"), ok(1, "a")},
		{2, never, set(0, "b", 0), unknown},
		{5, 6, get(0), ok(1, "a")},
	})
	// But once seen it cannot be unseen.
	expect(t, porcupine.Illegal, []op{
		{0, 1, create(0, "a"), ok(1, "a")},
		{2, never, set(0, "b", 0), unknown},
		{5, 6, get(0), ok(2, "b")},
		{7, 8, get(0), ok(1, "a")},
	})
}

func TestDeleteThenRecreateStartsAtVersionOne(t *testing.T) {
	expect(t, porcupine.Ok, []op{
		{0, 1, create(0, "a"), ok(1, "a")},
		{2, 3, set(0, "b", 0), ok(2, "b")},
		{4, 5, Input{Kind: "delete", ID: 0}, Output{Status: "ok"}},
		{6, 7, create(0, "c"), ok(1, "c")},
	})
	expect(t, porcupine.Illegal, []op{
		{0, 1, create(0, "a"), ok(1, "a")},
		{2, 3, Input{Kind: "delete", ID: 0}, Output{Status: "ok"}},
		{4, 5, Input{Kind: "delete", ID: 0}, Output{Status: "ok"}},
	})
}
