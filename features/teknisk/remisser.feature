# language: sv
@traffic @criterion:tech-referrals @needs:fhir_base @needs:referrals @writes @per_site
Egenskap: Remisser tur och retur över samexistensgränsen
  Hela remisser försvann och ord föll bort ur remissvar i verkliga driftstarter. Remissen
  skickas från platsen genom respektive systems eget gränssnitt (FHIR i den nya journalen,
  i det äldre det gränssnitt planens remissadapter når) och följs hela vägen: fram, kvitterad, besvarad och svaret
  tillbaka. Texten, med negationer (inte, ingen, inget, ej) och å, ä, ö, ska komma fram
  byte för byte åt båda hållen.

  @route:new-to-legacy
  @id:tek-referrals-01
  Scenario: Remiss från den nya journalen till det äldre journalsystemet och svaret tillbaka
    När platsens användare skickar en remiss till en enhet i det äldre journalsystemet
    Så kommer remissen fram med frågeställningen byte för byte
    Och kommer svaret tillbaka byte för byte

  @route:legacy-to-new
  @id:tek-referrals-02
  Scenario: Remiss från det äldre journalsystemet till den nya journalen och svaret tillbaka
    När platsens enhet i det äldre journalsystemet skickar en remiss till platsens enhet i den nya journalen
    Så kommer remissen fram med frågeställningen byte för byte
    Och kommer svaret tillbaka byte för byte
