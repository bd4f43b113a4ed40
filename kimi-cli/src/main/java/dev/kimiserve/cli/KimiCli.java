package dev.kimiserve.cli;

import picocli.CommandLine;
import picocli.CommandLine.Command;

/** Entry point of {@code ./kimi}. Each subcommand is its own class. */
@Command(name = "kimi", mixinStandardHelpOptions = true, version = "kimi-serve 0.1.0",
        description = "kimi-serve: serve and run Kimi Linear models.",
        subcommands = {UpCommand.class, LogitsCommand.class, GenerateCommand.class, TokenizeCommand.class, DetokenizeCommand.class, BenchCommand.class, BenchTokenizerCommand.class, BenchKernelsCommand.class, BenchServingCommand.class, MakeModelCommand.class, CommandLine.HelpCommand.class})
public final class KimiCli {
    public static void main(String[] args) {
        if (System.getProperty("java.util.logging.SimpleFormatter.format") == null) {
            System.setProperty("java.util.logging.SimpleFormatter.format", "[%4$s] %5$s%6$s%n");
        }
        System.exit(run(args));
    }

    /** Runs a command line and returns its exit code (0 ok, 1 failed, 2 bad usage). */
    public static int run(String... args) {
        CommandLine cli = new CommandLine(new KimiCli());
        cli.setExecutionExceptionHandler((ex, cmd, parseResult) -> {
            cmd.getErr().println("error: " + (ex.getMessage() == null ? ex.toString() : ex.getMessage()));
            if (Boolean.getBoolean("kimi.debug")) {
                ex.printStackTrace(cmd.getErr());
            }
            return 1;
        });
        return cli.execute(args);
    }
}
