# language: sv
@criterion:org-transition
Egenskap: Övergångsaktiviteterna är klara i tid och styrkta
  Inför varje driftstart finns en plan för övergångsaktiviteter: utrustning, HSA-id/KiV,
  manuell migrering, generalrepetition. Varje aktivitet har en ägare, ett datum och evidens.

  @id:org-transition-01
  Scenario: Ingen övergångsaktivitet är försenad eller saknar evidens
    Givet planens övergångsaktiviteter
    Så är ingen aktivitet försenad
    Och har varje klar aktivitet evidens
