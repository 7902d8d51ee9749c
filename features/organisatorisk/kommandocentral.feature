# language: sv
@criterion:org-roster
Egenskap: Kommandocentralen är bemannad på varje plats
  Från fyra veckor före driftstart finns en kommandocentral centralt och på varje plats,
  med roller för beslut, support och kommunikation. Varje roll ska ha en namngiven person
  som går att nå på telefon.

  @per_site
  @id:org-roster-01
  Scenario: Varje roll i platsens kommandocentral har en namngiven person med telefonnummer
    Givet platsens kommandocentral enligt planen
    Så har varje roll i planen en namngiven person
    Och har varje person i kommandocentralen ett telefonnummer

  @id:org-roster-02
  Scenario: Varje roll i den centrala kommandocentralen har en namngiven person med telefonnummer
    Givet den centrala kommandocentralen enligt planen
    Så har varje roll i planen en namngiven person
    Och har varje person i kommandocentralen ett telefonnummer
