# Run a sync_service command: inside the Compose stack when its sync-service container runs,
# natively (the project's .venv) otherwise, but never natively on Windows, where the service
# cannot run (fcntl, uvloop): there it needs the stack (Docker Desktop), or WSL2 and
# ./sync_cli.sh. Windows PowerShell 5.1 and PowerShell 7 (also on Linux and macOS).
#   .\sync_cli.ps1 status | initial-sync | incremental-sync | reconcile | daemon | test | help ...
# In the stack, paths given to a command are paths inside the container: write under /app/data
# (the sync-data volume), e.g. export-csv --out /app/data/exports/mine.csv.

# Not "Stop": there, a native command's redirected stderr (docker info with no engine) becomes a
# terminating error in Windows PowerShell and the script would end before the native fallback.
# Native commands are judged by $LASTEXITCODE instead.
$ErrorActionPreference = "Continue"
Set-Location -Path $PSScriptRoot -ErrorAction Stop

# @(...) keeps one argument an array (an if expression would unroll it to a string).
$Arguments = @(if ($args.Count -gt 0) { $args } else { "help" })

function ConvertTo-NativeArgument([string]$Argument) {
    # Windows PowerShell 5.1 and pwsh before 7.3 put a native argument's double quotes on the
    # command line unescaped, and the program's parser drops them: '{"type":"x"}' arrives as
    # {type:x}. Escape each as \" (doubling the backslashes before it); keep an empty argument.
    if ($Argument -eq "") { return '""' }
    return $Argument -replace '(\\*)"', '$1$1\"'
}

$Version = $PSVersionTable.PSVersion
if ($Version.Major -lt 7 -or ($Version.Major -eq 7 -and $Version.Minor -lt 3)) {
    $Arguments = @($Arguments | ForEach-Object { ConvertTo-NativeArgument $_ })
} else {
    $PSNativeCommandArgumentPassing = "Standard"
}

function Test-ComposeRunning {
    if (-not (Get-Command docker -ErrorAction SilentlyContinue)) { return $false }
    docker info *> $null
    if ($LASTEXITCODE -ne 0) { return $false }
    $running = docker compose ps --status running --quiet sync-service 2> $null
    return ($LASTEXITCODE -eq 0) -and [bool]$running
}

if ($env:SYNC_CLI_NATIVE -ne "1" -and (Test-ComposeRunning)) {
    if ($Arguments[0] -eq "daemon") {
        # A second daemon in the container could not bind METRICS_PORT and would exit 2.
        [Console]::Error.WriteLine("the sync-service container already runs the daemon: following its log (Ctrl-C stops following, not the daemon)")
        docker compose logs -f sync-service
        exit $LASTEXITCODE
    }
    # A TTY only when both ends are consoles: docker refuses one when input is redirected.
    $Tty = if ([Console]::IsInputRedirected -or [Console]::IsOutputRedirected) { @("-T") } else { @() }
    docker compose exec @Tty sync-service python -m sync_service.main @Arguments
    exit $LASTEXITCODE
}

if ($IsWindows -or $env:OS -eq "Windows_NT") {
    # Native Windows cannot run the service: it locks its database with fcntl, which Windows
    # does not have, and its pinned uvloop does not install there. Docker Desktop or WSL2 can.
    [Console]::Error.WriteLine("no Compose stack running, and the service cannot run natively on Windows (no fcntl; uvloop does not install): start the stack with 'docker compose up -d' (Docker Desktop), or run ./sync_cli.sh inside WSL2")
    exit 2
}
$Python = ".venv/bin/python"
if (-not (Test-Path $Python)) {
    # Not Write-Error: it would end the script with 1 before exit 2 under "Stop" preferences.
    [Console]::Error.WriteLine("no Compose stack running and no .venv: run 'make install' first")
    exit 2
}
& $Python -m sync_service.main @Arguments
exit $LASTEXITCODE
