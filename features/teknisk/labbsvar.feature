# language: sv
@traffic @criterion:tech-lab-results @system:new @needs:fhir_base @writes @per_site
Egenskap: Varje labbeställning besvaras i tid och på rätt patient
  Platsens användare beställer via den nya journalens API ett prov (B-Hb) för varje
  testpatient i planen. Varje beställning ska få ett svar (en DiagnosticReport som bygger
  på beställningen) om samma patient inom planens tid (coexistence.lab.result_within_s).
  Vägen till labbet är platsens lokala rutin (lab_route): via integrationsbryggan som
  HL7 v2 över MLLP, eller direkt.

  @lab_route:bridge @needs:bridge_base @needs:lab_mllp
  @id:tek-lab-results-01
  Scenario: Labbeställningar via bryggan besvaras i tid och på rätt patient
    När platsens användare beställer ett prov för varje testpatient
    Så har bryggan lämnat varje beställning till labbet och fått kvittensen AA
    Och har varje beställning fått sitt svar inom planens tid
    Och ligger varje svar på samma patient som beställningen

  @lab_route:direct
  @id:tek-lab-results-02
  Scenario: Labbeställningar direkt till labbet besvaras i tid och på rätt patient
    När platsens användare beställer ett prov för varje testpatient
    Så har varje beställning fått sitt svar inom planens tid
    Och ligger varje svar på samma patient som beställningen
