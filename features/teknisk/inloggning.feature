# language: sv
@criterion:tech-login @system:new @needs:fhir_base @per_site
Egenskap: Inloggning och roll per HSA-id på varje plats
  Personal kunde inte logga in veckan före en driftstart. Varje användare i planen loggar
  in mot den nya journalens API med sitt HSA-id och lösenord och ska finnas där med rätt
  roll på rätt organisation: platsens, med platsens HSA-id.

  @id:tek-login-01
  Scenario: Varje användare på platsen loggar in med sitt HSA-id och har sin roll på platsen
    När varje användare på platsen loggar in mot journalens API med sitt HSA-id
    Så accepteras inloggningen för varje användare
    Och har varje användare sin roll enligt planen på platsens organisation
