# language: sv
@criterion:tech-migration @system:new @needs:migration @per_site
Egenskap: Migrerade bokningar stämmer mot utdraget från det äldre journalsystemet
  När en plats går över migreras dess framtida bokningar ur det äldre journalsystemet.
  Sjukhus har gått live med bokningar flyttade till 00:05 och var sjätte bokning fel. Varje
  bokning i utdraget (CSV från det äldre systemet) ska finnas bland de migrerade, med samma
  patient, enhet och tid, och inget får ha migrerats som inte finns i utdraget.

  @id:tek-migration-01
  Scenario: Platsens migrerade bokningar stämmer med utdraget
    Givet utdraget av bokningar ur det äldre journalsystemet och de migrerade bokningarna
    Så är antalet bokningar på platsen detsamma i utdraget som efter migreringen
    Och finns varje bokning i utdraget bland de migrerade, och ingen annan
    Och har varje migrerad bokning samma patient, enhet och tid som i utdraget
