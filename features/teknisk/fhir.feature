# language: sv
@criterion:tech-fhir
Egenskap: FHIR-gränssnittet svarar och hittar testpatienter
  Integrationerna mot den nya journalen går via FHIR R4. Servern ska beskriva vad den
  kan och hitta varje testpatient på personnummer.

  @id:tek-fhir-01
  Scenario: Servern beskriver sig med ett CapabilityStatement för FHIR R4
    När serverns CapabilityStatement hämtas
    Så anger det FHIR-version "4.0.1"
    Och stöder det sökning på "Patient" med parametern "identifier"

  @id:tek-fhir-02
  Scenario: Varje testpatient hittas på sitt personnummer
    När varje testpatient i planen söks på personnummer via FHIR
    Så hittas exakt en patient per personnummer med rätt namn
