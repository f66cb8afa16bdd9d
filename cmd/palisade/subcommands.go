package main

import "github.com/spf13/cobra"

// subcommands lists the top-level commands, in help order.
func subcommands() []*cobra.Command {
	return []*cobra.Command{
		newWebhookCommand(runWebhook),
		newEnforcerCommand(runEnforcer),
		newAuditCommand(),
		newRulesCommand(),
		newCheckCommand(),
		newVersionCommand(),
	}
}
