<#
.SYNOPSIS
  Collect the facts of this Windows workstation for the go-live rehearsal (src/rehearsal/probes/workstation-facts.schema.json).

.DESCRIPTION
  Reads CIM (Win32_OperatingSystem, Win32_ComputerSystem, Win32_LogicalDisk, Win32_VideoController),
  the registry (UBR, installed programs, browser App Paths, Citrix Workspace), Get-Printer and
  Get-PnpDevice, and measures the EHR endpoints: TCP connect time, certificate trust (the machine's
  own trust store) and days to expiry, clock skew from the HTTP Date header. What cannot be read is
  left out, never guessed. Windows PowerShell 5.1 or PowerShell 7; no modules to install.

.EXAMPLE
  powershell -ExecutionPolicy Bypass -File collect-workstation.ps1 -Endpoint https://ehr.example.se/ -Out \\share\facts\sas-boras\$env:COMPUTERNAME.json
#>
[CmdletBinding()]
param(
  [string[]] $Endpoint = @(),
  [string] $Out,
  [int] $TimeoutMs = 5000
)
$ErrorActionPreference = 'Stop'

function Get-VersionText([string] $Text) {
  if ($Text -match '^[0-9]+(\.[0-9]+)*') { return $Matches[0] } else { return $null }
}

function Get-OsFacts {
  $os = Get-CimInstance Win32_OperatingSystem
  $ubr = (Get-ItemProperty 'HKLM:\SOFTWARE\Microsoft\Windows NT\CurrentVersion' -ErrorAction SilentlyContinue).UBR
  $version = if ($ubr) { "$($os.Version).$ubr" } else { $os.Version }
  [ordered]@{ family = 'windows'; name = $os.Caption; version = $version; build = "$($os.BuildNumber)" }
}

function Get-HardwareFacts {
  $cs = Get-CimInstance Win32_ComputerSystem
  $disk = Get-CimInstance Win32_LogicalDisk -Filter "DeviceID='$($env:SystemDrive)'"
  [ordered]@{
    manufacturer = $cs.Manufacturer
    model = $cs.Model
    ram_gb = [math]::Round($cs.TotalPhysicalMemory / 1GB, 1)
    disk_free_gb = [math]::Round($disk.FreeSpace / 1GB, 1)
  }
}

function Get-Displays {
  # the leading comma keeps a one-element array an array (PowerShell unrolls function output)
  ,@(Get-CimInstance Win32_VideoController | Where-Object { $_.CurrentHorizontalResolution } | ForEach-Object {
    [ordered]@{ width = [int]$_.CurrentHorizontalResolution; height = [int]$_.CurrentVerticalResolution }
  })
}

function Get-Programs {
  $keys = 'HKLM:\SOFTWARE\Microsoft\Windows\CurrentVersion\Uninstall\*',
          'HKLM:\SOFTWARE\WOW6432Node\Microsoft\Windows\CurrentVersion\Uninstall\*'
  Get-ItemProperty $keys -ErrorAction SilentlyContinue | Where-Object { $_.DisplayName -and $_.DisplayVersion }
}

function Get-Browsers {
  $found = [ordered]@{}
  foreach ($pair in @(@('edge', 'msedge.exe'), @('chrome', 'chrome.exe'), @('firefox', 'firefox.exe'))) {
    $path = (Get-ItemProperty "HKLM:\SOFTWARE\Microsoft\Windows\CurrentVersion\App Paths\$($pair[1])" -ErrorAction SilentlyContinue).'(default)'
    if ($path -and (Test-Path $path)) {
      $version = Get-VersionText (Get-Item $path).VersionInfo.ProductVersion
      if ($version) { $found[$pair[0]] = $version }
    }
  }
  $found
}

function Get-Citrix($Programs) {
  $app = $Programs | Where-Object { $_.DisplayName -like 'Citrix Workspace*' } | Select-Object -First 1
  if ($app) { Get-VersionText $app.DisplayVersion } else { $null }
}

function Get-Peripherals {
  $kinds = @{ SmartCardReader = 'smartcard-reader'; Camera = 'webcam'; Image = 'barcode-scanner' }
  ,@(Get-PnpDevice -PresentOnly -ErrorAction SilentlyContinue | ForEach-Object {
    $kind = $kinds[$_.Class]
    if (-not $kind -and $_.FriendlyName -match 'barcode|scanner') { $kind = 'barcode-scanner' }
    if (-not $kind -and $_.FriendlyName -match 'signature') { $kind = 'signature-pad' }
    if (-not $kind -and $_.FriendlyName -match 'headset') { $kind = 'headset' }
    if ($kind) {
      $status = if ($_.Status -eq 'OK') { 'ok' } elseif ($_.Status -eq 'Error') { 'error' } else { 'unknown' }
      [ordered]@{ kind = $kind; name = $_.FriendlyName; status = $status }
    }
  })
}

function Get-PrinterFacts {
  ,@(Get-Printer -ErrorAction SilentlyContinue | ForEach-Object {
    [ordered]@{ name = $_.Name; driver = $_.DriverName; port = $_.PortName }
  })
}

function Measure-Endpoint([string] $Url) {
  $uri = [Uri]$Url
  $result = [ordered]@{ url = $Url; latency_ms = $null; tls_trusted = $null; cert_days_left = $null; error = $null }
  $client = New-Object System.Net.Sockets.TcpClient
  try {
    $watch = [Diagnostics.Stopwatch]::StartNew()
    if (-not $client.ConnectAsync($uri.Host, $uri.Port).Wait($TimeoutMs)) { throw "no connection within $TimeoutMs ms" }
    $result.latency_ms = [math]::Round($watch.Elapsed.TotalMilliseconds, 2)
    if ($uri.Scheme -eq 'https') {
      $script:policyErrors = $null
      $callback = { param($s, $cert, $chain, $errors) $script:policyErrors = $errors; $true }
      $ssl = New-Object System.Net.Security.SslStream($client.GetStream(), $false, $callback)
      $ssl.AuthenticateAsClient($uri.Host)
      $result.tls_trusted = ($script:policyErrors -eq [System.Net.Security.SslPolicyErrors]::None)
      $cert = New-Object System.Security.Cryptography.X509Certificates.X509Certificate2($ssl.RemoteCertificate)
      $result.cert_days_left = [math]::Round(($cert.NotAfter - (Get-Date)).TotalDays, 1)
      $ssl.Dispose()
    }
  } catch {
    $result.error = "$($uri.Host):$($uri.Port): $($_.Exception.Message)"
  } finally {
    $client.Dispose()
  }
  $result
}

function Measure-Clock([string] $Url) {
  try {
    $answer = Invoke-WebRequest -Uri $Url -Method Head -UseBasicParsing -TimeoutSec ([math]::Ceiling($TimeoutMs / 1000))
    $server = [DateTimeOffset]::Parse($answer.Headers['Date'])
    [ordered]@{ skew_s = [math]::Round(([DateTimeOffset]::UtcNow - $server).TotalSeconds, 1); reference = $Url }
  } catch { $null }
}

$programs = Get-Programs
$facts = [ordered]@{
  schema = 'rehearsal-workstation-facts/1'
  hostname = $env:COMPUTERNAME
  collected_at = [DateTimeOffset]::Now.ToString('yyyy-MM-ddTHH:mm:sszzz')
  collector = 'collect-workstation.ps1 1'
  os = Get-OsFacts
  hardware = Get-HardwareFacts
  displays = Get-Displays
  browsers = Get-Browsers
  citrix_workspace = Get-Citrix $programs
  peripherals = Get-Peripherals
  printers = Get-PrinterFacts
  endpoints = @($Endpoint | ForEach-Object { Measure-Endpoint $_ })
}
if ($Endpoint.Count -gt 0) {
  $clock = Measure-Clock $Endpoint[0]
  if ($clock) { $facts.clock = $clock }
}
$json = $facts | ConvertTo-Json -Depth 6
if ($Out) {
  $tmp = "$Out.tmp"
  [IO.File]::WriteAllText($tmp, $json, (New-Object Text.UTF8Encoding($false)))
  Move-Item -Force $tmp $Out
} else {
  $json
}
