# language: sv
@criterion:clin-lab-order @system:new @needs:web_base @needs:fhir_base @writes @per_site
Egenskap: Labbeställning och provsvar i webbklienten
  En användare på platsen loggar in med sitt HSA-id, söker fram platsens testpatient och
  beställer ett prov. Beställningen går till labbet enligt platsens rutin (lab_route i
  planen: via integrationsbryggan som HL7 v2, eller direkt) och svaret ska visas på samma
  patient inom planens svarstid (coexistence.lab.result_within_s). Ett svar som hamnar på
  en annan patient, eller som aldrig kommer, är ett fel här.

  @id:klin-lab-order-01
  Scenario: En användare beställer ett labbprov och ser svaret på rätt patient
    Givet att en användare på platsen är inloggad i webbklienten
    När användaren söker fram platsens testpatient
    Och beställer labbprovet "P-CRP"
    Så visas beställningen "P-CRP" i patientens beställningslista
    Och visas provsvaret för "P-CRP" på samma patient inom planens svarstid
