# Run a sync_service command: inside the Compose stack when its sync-service container runs,
# natively (the project's .venv) otherwise.
#   .\sync_cli.ps1 status | initial-sync | incremental-sync | reconcile | daemon | test | help ...
$ErrorActionPreference = "Stop"
Set-Location -Path $PSScriptRoot

$Arguments = if ($args.Count -gt 0) { $args } else { @("help") }

function Test-ComposeRunning {
    if (-not (Get-Command docker -ErrorAction SilentlyContinue)) { return $false }
    docker info *> $null
    if ($LASTEXITCODE -ne 0) { return $false }
    $running = docker compose ps --status running --quiet sync-service 2> $null
    return [bool]$running
}

if ($env:SYNC_CLI_NATIVE -ne "1" -and (Test-ComposeRunning)) {
    docker compose exec sync-service python -m sync_service.main @Arguments
    exit $LASTEXITCODE
}

$Python = if ($IsWindows -or $env:OS -eq "Windows_NT") { ".venv\Scripts\python.exe" } else { ".venv/bin/python" }
if (-not (Test-Path $Python)) {
    Write-Error "no Compose stack running and no .venv: run 'make install' first"
    exit 2
}
& $Python -m sync_service.main @Arguments
exit $LASTEXITCODE
