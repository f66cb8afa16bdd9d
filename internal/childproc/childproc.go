// Package childproc starts the helper processes tests and the demo run
// (enforcers, kube-proxy) so that they die with the process that started
// them, even when it is SIGKILLed: nothing is left holding pins, links or
// network namespaces.
package childproc

import (
	"io"
	"os/exec"
	"runtime"
	"syscall"
)

// Start starts cmd with SIGKILL as its parent-death signal and returns a
// channel closed once it has exited and been reaped; out, if not nil, is
// closed then. The kernel sends the parent-death signal when the thread
// that started the child exits, not the process, so the child is started
// and waited for on a goroutine locked to its thread for the child's whole
// life.
func Start(cmd *exec.Cmd, out io.Closer) (<-chan struct{}, error) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	exited := make(chan struct{})
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer close(exited)
		if out != nil {
			defer out.Close()
		}
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		cmd.Wait() //nolint:errcheck // the exit status is the caller's to read from cmd.ProcessState
	}()
	if err := <-started; err != nil {
		return nil, err
	}
	return exited, nil
}
