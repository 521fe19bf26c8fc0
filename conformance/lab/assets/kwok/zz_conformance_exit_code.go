// Added to kwok's server package by the conformance lab build (conformance/lab/build.py).
//
// Why: a real kubelet's container runtime reports a command's non-zero exit as
// k8s.io/utils/exec.CodeExitError, which the streaming server turns into a v4/v5
// Status with reason NonZeroExitCode and the ExitCode cause, so `kubectl exec`
// exits with the command's code. kwok v0.8.0 returns the os/exec error wrapped
// in fmt.Errorf instead, so every non-zero exit reaches clients as
// "Internal error occurred" with exit code 1. This restores the kubelet's
// behaviour; nothing else in kwok is changed.

package server

import (
	"errors"
	osexec "os/exec"

	utilexec "k8s.io/utils/exec"
)

func withExitCode(err error) error {
	var exitErr *osexec.ExitError
	if errors.As(err, &exitErr) && exitErr.Exited() {
		return utilexec.CodeExitError{Err: err, Code: exitErr.ExitCode()}
	}
	return err
}
