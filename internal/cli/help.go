package cli

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ltigrade/ltigrade/internal/config"
	"github.com/ltigrade/ltigrade/internal/grade"
)

// helpTopic is a command without Run: cobra lists it under "Additional help
// topics" and `ltigrade help NAME` prints it.
func helpTopic(name, short, long string) *cobra.Command {
	return &cobra.Command{Use: name, Short: short, Long: long}
}

func exitCodesText() string {
	var b strings.Builder
	b.WriteString("Every ltigrade command ends with one of these exit codes:\n\n")
	for _, e := range grade.ExitCodes {
		fmt.Fprintf(&b, "  %d  %s\n", e.Code, e.Text)
	}
	b.WriteString("\nScripts can rely on them: for example a grader hook can treat 5 as \"will be delivered\nlater by `ltigrade sync`\" and 6 as \"needs a person\".")
	return b.String()
}

func environmentText() string {
	var b strings.Builder
	b.WriteString("ltigrade reads these environment variables (a flag beats the variable, the variable\nbeats the config file):\n\n")
	for _, e := range config.Environment() {
		fmt.Fprintf(&b, "  %-32s %s\n", e.Name, e.Help)
	}
	return strings.TrimRight(b.String(), "\n")
}
