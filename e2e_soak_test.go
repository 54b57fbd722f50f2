package main

import (
	mrand "math/rand/v2"
	"os"
	"testing"
)

// crashSoak reports whether PIXELRELAY_SOAK=1 asks for the long runs.
func crashSoak() bool { return os.Getenv("PIXELRELAY_SOAK") == "1" }

// TestCrashSoak: the crash campaign of TestCrashLosesNothing with kill
// moments drawn at random (seeded, the seed is logged) from all of them:
// mid-DATA, right after a 250, mid-delivery, during compaction and at a
// random instant. In CI: 200 messages and 5 kills. With PIXELRELAY_SOAK=1:
// 5000 messages to 3 recipients each and 60 kills.
func TestCrashSoak(t *testing.T) {
	plan := crashPlan{messages: 200, senders: 4, seed: crashSeed(t)}
	kills := 5
	if crashSoak() {
		plan.messages, plan.senders, kills = 5000, 6, 60
	}
	rng := mrand.New(mrand.NewPCG(plan.seed, 3))
	moments := []string{crashMidData, crashAfter250, crashMidDelivery, crashCompaction, crashRandom}
	for range kills {
		plan.kills = append(plan.kills, moments[rng.IntN(len(moments))])
	}
	crashReport(t, plan, crashCampaign(t, plan))
}
