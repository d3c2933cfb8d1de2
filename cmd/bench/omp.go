package main

import (
	"os"
	"syscall"
)

// ompEnv is what bench sets for libgomp when the user has not.
//
// libtorch's intra-op pool (OpenMP) and OpenBLAS's own pthread pool share
// the cores. With libgomp's default "active" waiting, idle OpenMP workers
// spin between parallel regions and steal the cores OpenBLAS's threads
// and the data loader need: on 2 cores a training step ran at 1.3 it/s
// with the default and 1.9 it/s with passive waiting (perf showed a
// quarter of the time in libgomp's spin loop and sched_yield).
// libgomp reads the variable once, when the library is loaded, so it has
// to be in the environment at exec time: bench re-executes itself.
var ompEnv = map[string]string{"OMP_WAIT_POLICY": "passive"}

// ompReexecMarker stops a second re-exec if the exec'd binary is somehow
// not this one.
const ompReexecMarker = "VITBENCH_OMP_REEXEC"

// reexecForOpenMP re-executes the running binary with ompEnv added when
// any of its variables is unset. A user's own setting always wins. It
// returns only when no re-exec was needed or it failed (then the run goes
// on with the defaults).
func reexecForOpenMP() {
	if os.Getenv(ompReexecMarker) != "" {
		return
	}
	var add []string
	for k, v := range ompEnv {
		if _, set := os.LookupEnv(k); !set {
			add = append(add, k+"="+v)
		}
	}
	if len(add) == 0 {
		return
	}
	exe, err := os.Executable()
	if err != nil {
		return
	}
	env := append(os.Environ(), add...)
	env = append(env, ompReexecMarker+"=1")
	_ = syscall.Exec(exe, os.Args, env)
}
